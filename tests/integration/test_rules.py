"""test_rules.py: the rule language over real HTTP (SPEC §2 `when`,
`auto_approve`, `amount`, expressions; §5 TaskAutoApproved, StepSkipped,
PaymentDue).

One `osse serve --test-clock=TIME` for the whole file (the rules read no clock;
the flag is there so the server runs as it does for the SLA tests).

What is checked:
- auto_approve true: TaskAutoApproved {"step","rule","inputs","result":true}
  right after StepOpened, the step approved at once and the flow going on;
  auto_approve false: the task waits in the inbox;
- when false: StepSkipped {"step","rule","inputs","result":false}, and
  fan-in treats the skipped step as done; when is evaluated when the step
  opens (after the applicant changed the form), on the request's own
  workflow version;
- the evaluator's semantics on one request with thirty-odd `when` rules
  (arithmetic, precedence, strings, `in`, lists, ?:, null, every function,
  short-circuit reads);
- a rule that fails at run time (null + 1, null > 1) is false and its event
  records "error" — for `when` and for `auto_approve`;
- publish-time checks: bad syntax, unknown field, unknown step, unknown
  function, static type errors, non-boolean conditions, a non-numeric
  amount: 422 invalid_definition with every problem's path and its column,
  in JSON and YAML, nothing published;
- `amount`: PaymentDue with amount and amount_satang, the tracking view's
  fee, awaiting_payment; a fractional fee; an amount that cannot be computed
  fails the step and rejects the request.

Python standard library only.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (FORM_FIELDS, Server, ServerTestCase, assert_error,  # noqa: E402
                          detail_paths, good_form, main, step_of, uniq)

COLUMN_RE = re.compile(r"column (\d+)")


def of_type(events, typ, step=None):
    return [e for e in events if e["type"] == typ
            and (step is None or (e.get("data") or {}).get("step") == step)]


def form_fields(**extra):
    f = json.loads(json.dumps(FORM_FIELDS))
    f["floors"] = {"type": "integer", "min": 0}   # optional, left out: null
    f.update(extra)
    return f


class RulesCase(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["--test-clock=2030-01-07T09:00:00+07:00"]).start()

    def setUp(self):
        self.w = self.world()
        self.plat = self.w.plat

    def definition(self, steps, wid=None):
        wid = wid or uniq("wf")
        return {"id": wid, "title": "Rules " + wid, "calendar": "th-gov",
                "form": form_fields(), "steps": steps}

    def publish(self, steps, wid=None):
        d = self.definition(steps, wid)
        r = self.plat.post("/v1/workflows", d)
        self.assertEqual(r.status, 201, "publishing a valid definition: expected 201, got %r\n%s"
                         % (r, json.dumps(d, indent=1)))
        return d["id"]

    def submit(self, wid, **over):
        form = good_form(**over)
        for k in [k for k, v in form.items() if v is None]:
            del form[k]
        return self.w.submit(wid, form)["id"]

    def events(self, rid):
        r = self.plat.get("/v1/requests/%s/events" % rid)
        self.assertEqual(r.status, 200, r)
        return r.json["events"]

    def states(self, rid):
        return {s["name"]: s["state"] for s in self.w.view(rid)["steps"]}

    def one(self, rid, typ, step):
        evs = of_type(self.events(rid), typ, step)
        self.assertEqual(len(evs), 1, "expected exactly one %s for step %s, got %s"
                         % (typ, step, evs))
        return evs[0]


class TestAutoApprove(RulesCase):

    RULE = 'form.area_sqm <= 50 && form.district == "bang-rak"'

    def test_auto_approve_true_and_false(self):
        A, B = self.w.A, self.w.B
        wid = self.publish({
            "commerce": {"kind": "task", "agency": A, "sla": "1 working day",
                         "auto_approve": self.RULE},
            "next": {"kind": "task", "agency": B, "after": ["commerce"]},
        })
        small = self.submit(wid, area_sqm=42.5, district="bang-rak")
        ev = self.one(small, "TaskAutoApproved", "commerce")
        self.assertEqual(ev["data"], {"step": "commerce", "rule": self.RULE,
                                      "inputs": {"form.area_sqm": 42.5,
                                                 "form.district": "bang-rak"},
                                      "result": True},
                         "TaskAutoApproved data: expected step, rule text, every input read "
                         "with its value, result true; got %s" % ev["data"])
        self.assertEqual((ev.get("actor") or {}).get("kind"), "system",
                         "TaskAutoApproved: expected actor kind system, got %s" % ev.get("actor"))
        evs = self.events(small)
        opened = of_type(evs, "StepOpened", "commerce")
        self.assertEqual(len(opened), 1, evs)
        self.assertLess(evs.index(opened[0]), evs.index(ev),
                        "StepOpened commerce must come before TaskAutoApproved")
        self.assertEqual(of_type(evs, "TaskDecided", "commerce"), [],
                         "an auto-approved task is not also decided by a person")
        self.assertEqual(self.states(small), {"commerce": "approved", "next": "open"},
                         "auto-approved: expected commerce approved and next open")
        self.assertNotIn(small, [t["request_id"] for t in self.w.inbox(A)],
                         "an auto-approved task must not wait in the inbox")
        r = self.w.ag[A].post("/v1/tasks/%s/commerce/decision" % small, {"outcome": "reject"})
        self.assertEqual(r.status, 409, "deciding an auto-approved task: expected 409, got %r" % r)

        for over in ({"area_sqm": 80}, {"district": "pathum-wan"}):
            big = self.submit(wid, **over)
            self.assertEqual([e for e in of_type(self.events(big), "TaskAutoApproved")
                              if (e.get("data") or {}).get("result") is True], [],
                             "auto_approve false (%s): expected no approval" % over)
            self.assertEqual(self.states(big), {"commerce": "open", "next": "pending"},
                             "auto_approve false (%s)" % over)
            self.assertIn(big, [t["request_id"] for t in self.w.inbox(A)],
                          "auto_approve false: the task waits in the inbox")

    def test_auto_approve_error_is_false_and_recorded(self):
        """`form.floors + 1 > 1` with floors missing: null + 1 is an error;
        the task is not approved, and the error is on the record."""
        A = self.w.A
        rule = "form.floors + 1 > 1"
        wid = self.publish({"t": {"kind": "task", "agency": A, "auto_approve": rule}})
        rid = self.submit(wid)
        self.assertEqual(self.states(rid), {"t": "open"},
                         "auto_approve that errors: expected the task open")
        evs = self.events(rid)
        self.assertEqual([e for e in evs if (e.get("data") or {}).get("result") is True], [], evs)
        recs = [e for e in evs if (e.get("data") or {}).get("step") == "t"
                and "error" in (e.get("data") or {})]
        self.assertEqual(len(recs), 1,
                         "SPEC §2: an auto_approve error is recorded: expected one event for "
                         "step t carrying \"error\" (with the rule and its inputs), got events %s"
                         % [(e["type"], e.get("data")) for e in evs])
        d = recs[0]["data"]
        self.assertEqual(d.get("rule"), rule, d)
        self.assertEqual(d.get("inputs"), {"form.floors": None}, d)
        self.assertRegex(d["error"], COLUMN_RE, "the error should say the column: %s" % d)


class TestWhen(RulesCase):

    def flow(self):
        A, B, C = self.w.A, self.w.B, self.w.C
        return {
            "intake": {"kind": "task", "agency": A},
            "fire": {"kind": "task", "agency": B, "after": ["intake"],
                     "when": "form.area_sqm > 200", "sla": "10 working days",
                     "on_breach": "approve"},
            "health": {"kind": "task", "agency": C, "after": ["intake"]},
            "final": {"kind": "task", "agency": A, "after": ["fire", "health"]},
        }

    def test_when_false_skips_and_fan_in_goes_on(self):
        A, C = self.w.A, self.w.C
        wid = self.publish(self.flow())
        rid = self.submit(wid, area_sqm=42.5)
        self.assertEqual(self.states(rid), {"intake": "open", "fire": "pending",
                                            "health": "pending", "final": "pending"})
        self.assertEqual(of_type(self.events(rid), "StepSkipped"), [],
                         "when is evaluated when the step opens, not at submission")
        self.w.decide(rid, "intake", "approve", agency=A)
        sk = self.one(rid, "StepSkipped", "fire")
        self.assertEqual(sk["data"], {"step": "fire", "rule": "form.area_sqm > 200",
                                      "inputs": {"form.area_sqm": 42.5}, "result": False},
                         "StepSkipped data: expected step, rule, inputs, result false; got %s"
                         % sk["data"])
        self.assertEqual(of_type(self.events(rid), "StepOpened", "fire"), [],
                         "a skipped step never opens")
        self.assertEqual(self.states(rid), {"intake": "approved", "fire": "skipped",
                                            "health": "open", "final": "pending"})
        self.w.decide(rid, "health", "approve", agency=C)
        self.assertEqual(self.states(rid)["final"], "open",
                         "fan-in: final after [fire (skipped), health (approved)] must open")
        self.w.decide(rid, "final", "approve", agency=A)
        self.assertEqual(self.w.view(rid)["status"], "completed")

    def test_when_true_opens_and_is_evaluated_at_opening(self):
        """Submitted with area 42.5, returned by intake, the applicant
        changes area_sqm to 300: fire's when sees 300 when it opens."""
        A, B = self.w.A, self.w.B
        wid = self.publish(self.flow())
        big = self.submit(wid, area_sqm=250)
        self.w.decide(big, "intake", "approve", agency=A)
        self.assertEqual(self.states(big)["fire"], "open", "when true: fire must open")
        self.assertEqual(of_type(self.events(big), "StepSkipped"), [])
        self.assertEqual(self.states(big)["final"], "pending")
        self.w.decide(big, "fire", "approve", agency=B)

        rid = self.submit(wid, area_sqm=42.5)
        self.w.decide(rid, "intake", "return", agency=A, reason="check the area")
        r = self.w.portal.post("/v1/requests/%s/info" % rid,
                               {"step": "intake", "form": {"area_sqm": 300}, "message": "300"})
        self.assertEqual(r.status, 200, r)
        self.w.decide(rid, "intake", "approve", agency=A)
        self.assertEqual(self.states(rid)["fire"], "open",
                         "when must read the form as it is when the step opens (area 300)")

    def test_request_keeps_its_version_rules(self):
        """Version 2 changes fire's when; a request on version 1 keeps v1's."""
        A = self.w.A
        flow = self.flow()
        wid = self.publish(flow)
        rid = self.submit(wid, area_sqm=42.5)
        flow["fire"]["when"] = "form.area_sqm > 10"
        r = self.plat.post("/v1/workflows", self.definition(flow, wid))
        self.assertEqual((r.status, r.json.get("version")), (201, 2), r)
        self.w.decide(rid, "intake", "approve", agency=A)
        sk = self.one(rid, "StepSkipped", "fire")
        self.assertEqual(sk["data"]["rule"], "form.area_sqm > 200",
                         "a request stays on its version's rule: %s" % sk["data"])
        rid2 = self.submit(wid, area_sqm=42.5)
        self.w.decide(rid2, "intake", "approve", agency=A)
        self.assertEqual(self.states(rid2)["fire"], "open", "version 2's rule opens fire")


class TestEvaluator(RulesCase):

    # (step, rule, expected: True opens the step, False skips it, "error"
    # skips it with an error on record, expected inputs or None to skip the
    # check). The form: business_name "Noodle Shop 7", area_sqm 42.5,
    # seats 20, district bang-rak, opening_date 2027-01-15, no has_parking,
    # no floors.
    CASES = [
        ("arith", "form.seats * 2 + 500 == 540", True, {"form.seats": 20}),
        ("prec", "1 + 2 * 3 == 7 && (1 + 2) * 3 == 9", True, {}),
        ("div_exact", "form.seats / 4 == 5", True, None),
        ("div_real", "form.seats / 8 == 2.5", True, None),
        ("mod", "form.seats % 7 == 6", True, None),
        ("neg", "-form.seats < 0", True, None),
        ("int_real", "form.seats == 20.0", True, None),
        ("cmp_false", "form.area_sqm >= 42.6", False, {"form.area_sqm": 42.5}),
        ("str_cmp", 'form.district < "c"', True, None),
        ("str_cat", 'form.district + "/x" == "bang-rak/x"', True, None),
        ("date_cmp", 'form.opening_date > "2027-01-01"', True, None),
        ("in_list", 'form.district in ["bang-rak", "pathum-wan"]', True, None),
        ("not_in", '!(form.district in ["khlong-toei"])', True, None),
        ("in_str", '"Shop" in form.business_name', True, None),
        ("in_str_false", '"shop" in form.business_name', False, None),
        ("lower", 'contains(lower(form.business_name), "noodle shop")', True, None),
        ("upper", 'upper(form.district) == "BANG-RAK"', True, None),
        ("len_str", "len(form.business_name) == 13", True, None),
        ("len_list", "len([1, 2] + [3]) == 3", True, None),
        ("starts", 'starts_with(form.business_name, "Noodle")', True, None),
        ("starts_false", 'starts_with(form.business_name, "noodle")', False, None),
        ("round_half", "round(form.area_sqm) == 43", True, None),
        ("round_digits", "round(form.area_sqm / 4, 1) == 10.6", True, None),
        ("ternary", '(form.area_sqm > 40 ? "big" : "small") == "big"', True, None),
        ("list_eq", '[1, "a", [true]] == [1, "a", [true]]', True, None),
        ("null_missing", "form.has_parking == null", True, {"form.has_parking": None}),
        ("null_not_false", "form.has_parking == false", False, None),
        ("and_false", "form.area_sqm > 100 && form.seats > 1", False,
         {"form.area_sqm": 42.5}),
        ("or_true", "form.area_sqm > 100 || form.seats > 1", True, None),
        ("short_circuit", "form.seats > 100 && form.floors + 1 > 1", False,
         {"form.seats": 20}),
        ("submitted", "request.submitted_at != null", True, None),
        ("err_add", "form.floors + 1 > 1", "error", {"form.floors": None}),
        ("err_cmp", "form.floors > 1", "error", {"form.floors": None}),
        ("null_guard", "form.floors != null && form.floors > 1", False, {"form.floors": None}),
        ("null_or", "form.floors == null || form.floors > 1", True, None),
    ]

    def test_evaluator_table(self):
        A = self.w.A
        steps = {name: {"kind": "task", "agency": A, "when": rule}
                 for name, rule, _, _ in self.CASES}
        wid = self.publish(steps)
        rid = self.submit(wid, business_name="Noodle Shop 7", area_sqm=42.5, seats=20,
                          district="bang-rak", opening_date="2027-01-15")
        st = self.states(rid)
        evs = self.events(rid)
        skipped = {e["data"]["step"]: e["data"] for e in of_type(evs, "StepSkipped")}
        wrong = []
        for name, rule, want, inputs in self.CASES:
            got = st.get(name)
            exp_state = "open" if want is True else "skipped"
            if got != exp_state:
                wrong.append("%s: `%s` expected the step %s, got %s (%s)"
                             % (name, rule, exp_state, got, skipped.get(name)))
                continue
            if want is True:
                continue
            d = skipped[name]
            if d.get("rule") != rule:
                wrong.append("%s: StepSkipped rule %r, expected %r" % (name, d.get("rule"), rule))
            if want == "error":
                if not isinstance(d.get("error"), str) or not COLUMN_RE.search(d["error"]):
                    wrong.append("%s: `%s` expected StepSkipped with an \"error\" saying the "
                                 "column, got %s" % (name, rule, d))
                if d.get("result") not in (None, False):
                    wrong.append("%s: an error's result must not be recorded as %r"
                                 % (name, d.get("result")))
            elif d.get("result") is not False or "error" in d:
                wrong.append("%s: `%s` expected StepSkipped result false without error, got %s"
                             % (name, rule, d))
            if inputs is not None and d.get("inputs") != inputs:
                wrong.append("%s: `%s` expected inputs %s (only the paths read), got %s"
                             % (name, rule, inputs, d.get("inputs")))
        self.assertEqual(wrong, [], "evaluator mismatches:\n" + "\n".join(wrong))


class TestPublishChecks(RulesCase):

    def bad_steps(self):
        A, B = self.w.A, self.w.B
        return {
            "syntax": {"kind": "task", "agency": A, "when": "form.area_sqm >"},
            "unknown_field": {"kind": "task", "agency": A,
                              "when": "form.area_sqm > 200 && form.nope == 1"},
            "unknown_step": {"kind": "task", "agency": A,
                             "auto_approve": "data.nosuch.alive == true"},
            "unknown_fn": {"kind": "task", "agency": A, "when": "foo(form.seats) > 1"},
            "type_err": {"kind": "task", "agency": B, "auto_approve": '"abc" * 2 > 1'},
            "not_bool": {"kind": "task", "agency": B, "when": "form.seats + 1"},
            "fee": {"kind": "payment", "amount": "form.business_name"},
            "ok": {"kind": "task", "agency": B, "when": "form.seats > 1"},
        }

    EXPECT = {  # path -> (column or None, words the message must hold)
        "steps.syntax.when": (None, []),
        "steps.unknown_field.when": (24, ["form.nope"]),
        "steps.unknown_step.auto_approve": (1, ["nosuch"]),
        "steps.unknown_fn.when": (1, ["foo"]),
        "steps.type_err.auto_approve": (None, []),
        "steps.not_bool.when": (None, []),
        "steps.fee.amount": (None, []),
    }

    def check_refusal(self, r, wid, expect, how):
        assert_error(self, r, 422, "invalid_definition",
                     "%s: a definition with bad rules: expected 422 invalid_definition, got %r"
                     % (how, r))
        details = r.json["error"]["details"]
        by_path = {}
        for d in details:
            by_path.setdefault(d.get("path"), []).append(d.get("message") or "")
        missing = [p for p in expect if p not in by_path]
        self.assertEqual(missing, [], "%s: every problem must be reported with its key's path; "
                         "missing %s in details %s" % (how, missing, details))
        self.assertNotIn("steps.ok.when", by_path, "%s: a good rule reported: %s"
                         % (how, details))
        for path, (col, words) in expect.items():
            msgs = by_path[path]
            cols = [int(m.group(1)) for m in map(COLUMN_RE.search, msgs) if m]
            self.assertTrue(cols, "%s: %s: expected the message to say \"column N\", got %s"
                            % (how, path, msgs))
            if col is not None:
                self.assertIn(col, cols, "%s: %s: expected column %d, got %s"
                              % (how, path, col, msgs))
            for word in words:
                self.assertTrue(any(word in m for m in msgs), "%s: %s: expected %r in the "
                                "message, got %s" % (how, path, word, msgs))
        g = self.plat.get("/v1/workflows/" + wid)
        self.assertEqual(g.status, 404, "%s: a refused definition must not be published: %r"
                         % (how, g))

    def test_all_problems_reported_json(self):
        d = self.definition(self.bad_steps())
        r = self.plat.post("/v1/workflows", d)
        self.check_refusal(r, d["id"], self.EXPECT, "JSON")

    def test_all_problems_reported_yaml(self):
        d = self.definition(self.bad_steps())
        # JSON is YAML (flow style): the same tree, through the YAML parser.
        text = "# rules\n" + json.dumps(d, indent=2) + "\n"
        r = self.plat.post("/v1/workflows", raw=text, content_type="application/yaml")
        self.check_refusal(r, d["id"], self.EXPECT, "YAML")

    def test_each_problem_alone(self):
        bad = self.bad_steps()
        for name, step in bad.items():
            if name == "ok":
                continue
            d = self.definition({name: step})
            r = self.plat.post("/v1/workflows", d)
            key = [k for k in ("when", "auto_approve", "amount") if k in step][0]
            path = "steps.%s.%s" % (name, key)
            assert_error(self, r, 422, "invalid_definition",
                         "step %s (`%s`): expected 422 invalid_definition, got %r"
                         % (name, step[key], r))
            self.assertEqual(detail_paths(r), [path], "step %s (`%s`): expected exactly one "
                             "problem at %s, got %s" % (name, step[key], path,
                                                        r.json["error"]["details"]))

    def test_valid_rules_publish(self):
        A = self.w.A
        self.publish({
            "a": {"kind": "task", "agency": A,
                  "when": 'len(lower(form.business_name)) > 0 && form.district in '
                          '["bang-rak"] ? true : false',
                  "auto_approve": "round(form.area_sqm, 1) <= 50 || form.has_parking == true"},
            "fee": {"kind": "payment", "after": ["a"],
                    "amount": "form.seats > 10 ? 500 + 2 * form.seats : 500"},
        })


class TestAmount(RulesCase):

    def test_amount_payment_due(self):
        """amount 500 + 2 * form.seats with seats 20: PaymentDue 540.00 /
        54000 satang; the fee in the view; awaiting_payment."""
        A = self.w.A
        wid = self.publish({
            "commerce": {"kind": "task", "agency": A, "auto_approve": "form.area_sqm <= 50"},
            "fee": {"kind": "payment", "after": ["commerce"], "amount": "500 + 2 * form.seats"},
        })
        rid = self.submit(wid, seats=20, area_sqm=42.5)
        ev = self.one(rid, "PaymentDue", "fee")
        self.assertEqual((ev["data"].get("amount"), ev["data"].get("amount_satang")),
                         ("540.00", 54000), "PaymentDue: expected amount \"540.00\" and "
                         "amount_satang 54000, got %s" % ev["data"])
        v = self.w.view(rid)
        self.assertEqual(v["status"], "awaiting_payment", v)
        fee = v.get("fee") or {}
        self.assertEqual((fee.get("amount"), fee.get("paid"), fee.get("qr")), ("540.00", False, None),
                         "tracking view fee: expected amount 540.00, not paid, no qr (no "
                         "collecting agency), got %s" % fee)
        self.assertRegex(fee.get("reference") or "", r"^[A-Z0-9]{12,20}$", fee)
        self.assertEqual(fee["reference"], ev["data"].get("reference"), (fee, ev))
        self.assertEqual(step_of(v, "fee")["state"], "open", v)
        self.assertEqual(self.states(rid)["commerce"], "approved", v)

    def test_fractional_amount(self):
        wid = self.publish({"fee": {"kind": "payment", "amount": "form.area_sqm * 3 + 0.25"}})
        rid = self.submit(wid, area_sqm=42.5)
        ev = self.one(rid, "PaymentDue", "fee")
        self.assertEqual((ev["data"].get("amount"), ev["data"].get("amount_satang")),
                         ("127.75", 12775), "42.5 * 3 + 0.25: expected 127.75 / 12775 satang, "
                         "got %s" % ev["data"])
        fee = self.w.view(rid).get("fee") or {}
        self.assertEqual((fee.get("amount"), fee.get("paid")), ("127.75", False), fee)

    def test_amount_error_fails_the_step(self):
        """seats missing: 500 + 2 * null is an error; the fee step fails and
        the request is rejected (SPEC §2 fan-in; StepFailed per design.md)."""
        wid = self.publish({"fee": {"kind": "payment", "amount": "500 + 2 * form.seats"}})
        rid = self.submit(wid, seats=None)
        v = self.w.view(rid)
        self.assertEqual((v["status"], step_of(v, "fee")["state"]), ("rejected", "failed"),
                         "an amount that cannot be computed: expected the request rejected and "
                         "the step failed, got %s" % v)
        evs = self.events(rid)
        self.assertEqual(of_type(evs, "PaymentDue"), [], evs)
        failed = [e for e in evs if (e.get("data") or {}).get("step") == "fee"
                  and "error" in (e.get("data") or {})]
        self.assertTrue(failed, "the amount's error must be on the record: %s" % evs)
        self.assertEqual(len(of_type(evs, "RequestRejected")), 1, evs)


if __name__ == "__main__":
    main()
