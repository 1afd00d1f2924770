"""test_licences.py: Receive (SPEC §2 issue steps, §4 revocation, §6 the key).

Each test starts its own `osse serve --test-clock=2030-01-07T09:00:00+07:00`
on a fresh data directory; time moves only by POST /v1/test/clock. The
workflows here have no payment step (payments are another test's): a request
goes to its issue step at once, or after one agency's approval.

What is checked:
- LicenceIssued {step, number, valid_from, valid_until, public_fields,
  document, jws}; the document's keys in SPEC's order; the JWS verified by
  independent code (the `cryptography` package's Ed25519, never osse's):
  header {"alg":"EdDSA","kid":<GET /v1/log/public-key's key_id>}, payload =
  the document, issuer = the log's origin; the tracking view's `licence`;
- numbers: {bbbb} (year + 543), {yyyy} in the calendar's utc_offset (UTC
  without a calendar), the per-year counter restarting on 1 January, a plain
  counter without a year, no gap or reuse across a kill -9 between issues;
- publishing refuses bad templates (two years, no {seq:N}, bad literal);
- LicenceExpired at valid_until on the test clock, once (also after a
  restart), fired at start when it fell due while the server was down, never
  for a revoked licence;
- revocation: platform 200, the issuing agency 200, another agency and a
  portal 403, unknown 404, twice 409, bad bodies 422 and 413 with nothing
  written; the registry and the tracking view show it at once;
- `osse replay` gives the live digest;
- the registry's lists read from its index on disk: pages of 7 with
  cursors under every filter (none, workflow, each status, q on text and on
  a number field, workflow and status together) cover the same licences as
  one page of 500 and as the model the test keeps, newest first, the last
  page's next_cursor alone null; a revoked and an expired licence move
  between the status filters with their entries as the lookup by number
  shows them; the CSV export over more than one page of the index (256
  rows) under several filters; every answer byte for byte the same after a
  clean restart and after a kill -9.

Python standard library plus `cryptography` (Debian's python3-cryptography).
"""

import base64
import datetime as dt
import json
import os
import random
import string
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (FORM_FIELDS, Server, World, good_form, log_events, main,  # noqa: E402
                          replay_data, run_osse)

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # pragma: no cover
    Ed25519PublicKey = None

START = "2030-01-07T09:00:00+07:00"
DOC_KEYS = ["number", "workflow", "title", "issued_at", "valid_from", "valid_until", "fields",
            "issuer"]


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def prefix():
    return "L" + "".join(random.choice(string.ascii_uppercase) for _ in range(6))


def issue_workflow(wid, number, agency=None, calendar="th-gov", valid_for="P1Y", task=None):
    steps = {}
    if task:
        steps["review"] = {"kind": "task", "agency": task}
    steps["licence"] = {"kind": "issue", "number": number, "valid_for": valid_for,
                        "public_fields": ["business_name", "district"]}
    if task:
        steps["licence"]["after"] = ["review"]
    if agency:
        steps["licence"]["agency"] = agency
    d = {"id": wid, "title": "Licence " + wid, "form": json.loads(json.dumps(FORM_FIELDS)),
         "steps": steps}
    if calendar:
        d["calendar"] = calendar
    return d


def verify_jws(tc, jws, pubkey_json):
    """Checks a compact JWS with independent code; returns the payload."""
    parts = jws.split(".")
    tc.assertEqual(len(parts), 3, jws)
    for p in parts:
        tc.assertNotIn("=", p, "base64url without padding")
    header = json.loads(b64url_decode(parts[0]))
    tc.assertEqual(header, {"alg": "EdDSA", "kid": pubkey_json["key_id"]})
    raw = base64.b64decode(pubkey_json["public_key"])
    tc.assertEqual(len(raw), 32)
    key = Ed25519PublicKey.from_public_bytes(raw)
    signing_input = (parts[0] + "." + parts[1]).encode()
    key.verify(b64url_decode(parts[2]), signing_input)  # raises when bad
    bad = bytearray(b64url_decode(parts[2]))
    bad[0] ^= 1
    with tc.assertRaises(InvalidSignature):
        key.verify(bytes(bad), signing_input)
    return b64url_decode(parts[1])


class LicenceCase(unittest.TestCase):
    def setUp(self):
        self.server = Server(extra_args=["--test-clock=" + START]).start()
        try:
            self.w = World(self.server)
        except BaseException:
            self.server.kill()
            self.server.cleanup()
            raise

    def tearDown(self):
        srv = self.server
        problem = None
        if srv.alive():
            rc = srv.stop()
            if rc != 0:
                problem = "osse exited with %s; stderr:\n%s" % (rc, srv.stderr_tail(60))
        elif srv.proc is not None:
            problem = "osse died during the test; stderr:\n%s" % srv.stderr_tail(60)
        if problem:
            srv.own_dir = False
        srv.cleanup()
        if problem:
            raise AssertionError(problem)

    # -- helpers ---------------------------------------------------------

    def restart(self, kill=True, clock=START):
        self.server.own_dir = False
        if kill:
            self.server.kill()
        else:
            self.assertEqual(self.server.stop(), 0)
        old = self.server
        self.server = Server(data_dir=old.data_dir, extra_args=["--test-clock=" + clock]).start()
        self.server.own_dir = True
        self.w.plat = self.server.client(self.w.admin_token)
        self.w.portal = self.server.client(self.w.portal.token)
        self.w.anon = self.server.client("")
        self.w.ag = {a: self.server.client(c.token) for a, c in self.w.ag.items()}

    def clock(self, now):
        r = self.w.plat.post("/v1/test/clock", {"now": now})
        self.assertEqual(r.status, 200, r)

    def publish(self, **kw):
        wid = "lic-" + prefix().lower()
        self.w.publish(issue_workflow(wid, **kw))
        return wid

    def issue(self, wid, **form):
        req = self.w.submit(wid, good_form(**form))
        v = self.w.view(req["id"])
        self.assertEqual(v["status"], "completed", v)
        self.assertIsNotNone(v["licence"], v)
        return req["id"], v["licence"]

    def events(self, rid, typ):
        r = self.w.plat.get("/v1/requests/%s/events" % rid)
        self.assertEqual(r.status, 200, r)
        return [e for e in r.json["events"] if e["type"] == typ]

    def registry(self, number):
        r = self.w.anon.get("/v1/public/licences/" + number)
        self.assertEqual(r.status, 200, r)
        return r.json

    # -- the document and its signature ------------------------------------

    @unittest.skipIf(Ed25519PublicKey is None, "no Ed25519 verifier in this Python")
    def test_issued_document_and_jws_verify_independently(self):
        pfx = prefix()
        wid = self.publish(number=pfx + "-{bbbb}-{seq:4}", agency=self.w.A)
        rid, lic = self.issue(wid, business_name="Khao Man Gai", district="bang-rak")
        self.assertEqual(lic["number"], pfx + "-2573-0001")  # 2030 + 543
        self.assertEqual(sorted(lic), ["jws", "number", "status", "valid_from", "valid_until"])
        self.assertEqual(lic["status"], "valid")
        self.assertEqual(lic["valid_from"], "2030-01-07T02:00:00.000Z")
        self.assertEqual(lic["valid_until"], "2031-01-07T02:00:00.000Z")
        ev = self.events(rid, "LicenceIssued")
        self.assertEqual(len(ev), 1)
        data = ev[0]["data"]
        self.assertEqual(sorted(data), sorted(["step", "number", "valid_from", "valid_until",
                                               "public_fields", "document", "jws"]))
        self.assertEqual(data["public_fields"],
                         {"business_name": "Khao Man Gai", "district": "bang-rak"})
        self.assertEqual(data["jws"], lic["jws"])
        pk = self.w.anon.get("/v1/log/public-key").json
        payload = verify_jws(self, lic["jws"], pk)
        # The payload is the document, compact, keys in SPEC's order.
        doc = json.loads(payload, object_pairs_hook=lambda kv: kv)
        self.assertEqual([k for k, _ in doc], DOC_KEYS)
        doc = json.loads(payload)
        self.assertEqual(doc, data["document"])
        self.assertEqual(payload, json.dumps(doc, separators=(",", ":"),
                                             ensure_ascii=False).encode())
        origin = self.w.anon.get("/v1/log/checkpoint").json["origin"]
        self.assertEqual(doc["issuer"], origin)
        self.assertEqual(doc["workflow"], wid)
        self.assertEqual(doc["title"], "Licence " + wid)
        self.assertEqual(doc["issued_at"], lic["valid_from"])
        self.assertEqual(doc["fields"], data["public_fields"])
        # The registry's entry carries the same document and JWS.
        entry = self.registry(lic["number"])
        self.assertEqual(entry["document"], doc)
        self.assertEqual(entry["jws"], lic["jws"])
        # And no personal value (the form's pii fields) is in any of it.
        form = self.w.view(rid)["form"]
        self.assertNotIn(form["applicant_id"], json.dumps(entry))

    # -- numbers -------------------------------------------------------------

    def test_year_restarts_in_the_calendar_offset_and_utc_without_one(self):
        pfx, pfx2, pfx3 = prefix(), prefix(), prefix()
        th = self.publish(number=pfx + "-{yyyy}-{seq:3}")
        utc = self.publish(number=pfx2 + "-{bbbb}-{seq:3}", calendar=None)
        plain = self.publish(number=pfx3 + "-{seq:2}")
        self.clock("2030-12-31T23:30:00+07:00")
        nums = [self.issue(w)[1]["number"] for w in (th, th, utc, plain)]
        self.assertEqual(nums, [pfx + "-2030-001", pfx + "-2030-002", pfx2 + "-2573-001",
                                pfx3 + "-01"])
        # 00:10 on 1 January in +07:00 is still 2030 in UTC.
        self.clock("2031-01-01T00:10:00+07:00")
        nums = [self.issue(w)[1]["number"] for w in (th, utc, plain)]
        self.assertEqual(nums, [pfx + "-2031-001", pfx2 + "-2573-002", pfx3 + "-02"])
        self.clock("2031-01-01T07:00:00+07:00")  # 00:00 UTC
        nums = [self.issue(w)[1]["number"] for w in (th, utc, plain)]
        self.assertEqual(nums, [pfx + "-2031-002", pfx2 + "-2574-001", pfx3 + "-03"])
        # Past 10^N - 1 the counter simply grows wider.
        for _ in range(97):
            self.issue(plain)
        self.assertEqual(self.issue(plain)[1]["number"], pfx3 + "-101")

    def test_no_gap_or_reuse_across_kill_9(self):
        pfx = prefix()
        wid = self.publish(number=pfx + "-{bbbb}-{seq:6}")
        first = [self.issue(wid)[1]["number"] for _ in range(2)]
        self.restart(kill=True)
        after = [self.issue(wid)[1]["number"] for _ in range(2)]
        self.restart(kill=True)
        last = self.issue(wid)[1]["number"]
        nums = first + after + [last]
        self.assertEqual(nums, ["%s-2573-%06d" % (pfx, i) for i in range(1, 6)])
        r = self.w.anon.get("/v1/public/licences?workflow=" + wid)
        self.assertEqual([x["number"] for x in r.json["licences"]], nums[::-1])

    def test_publish_checks_templates(self):
        for bad in ["X-{yyyy}-{bbbb}-{seq:3}", "X-{yyyy}", "X-{seq:3}-{seq:2}", "x-{seq:3}",
                    "X-{seq:0}", "X-{seq:10}", "X-{mm}-{seq:3}", "X_{seq:3}"]:
            d = issue_workflow("lic-bad-" + prefix().lower(), number=bad)
            r = self.w.plat.post("/v1/workflows", d)
            self.assertEqual(r.status, 422, (bad, r))
            self.assertIn("steps.licence.number", [x["path"] for x in r.json["error"]["details"]],
                          (bad, r))
        self.publish(number=prefix() + "-{bbbb}-{seq:9}")

    # -- expiry --------------------------------------------------------------

    def test_expiry_on_the_test_clock_once(self):
        wid = self.publish(number=prefix() + "-{seq:3}", valid_for="P30D")
        rid, lic = self.issue(wid)
        self.clock("2030-02-06T08:59:00+07:00")
        self.assertEqual(self.registry(lic["number"])["status"], "valid")
        self.assertEqual(self.events(rid, "LicenceExpired"), [])
        self.clock("2030-02-06T09:00:00+07:00")
        ev = self.events(rid, "LicenceExpired")
        self.assertEqual(len(ev), 1)
        self.assertEqual(ev[0]["at"], "2030-02-06T02:00:00.000Z")
        self.assertEqual(ev[0]["actor"]["kind"], "system")
        self.assertEqual(self.registry(lic["number"])["status"], "expired")
        self.assertEqual(self.w.view(rid)["licence"]["status"], "expired")
        r = self.w.anon.get("/v1/public/licences?status=expired&workflow=" + wid)
        self.assertEqual([x["number"] for x in r.json["licences"]], [lic["number"]])
        self.restart(kill=True, clock="2030-02-06T09:00:00+07:00")
        self.clock("2031-03-01T09:00:00+07:00")
        self.assertEqual(len(self.events(rid, "LicenceExpired")), 1)

    def test_expiry_due_while_down_fires_at_start_and_never_when_revoked(self):
        wid = self.publish(number=prefix() + "-{seq:3}", valid_for="PT2H")
        rid, lic = self.issue(wid)
        rid2, lic2 = self.issue(wid)
        r = self.w.plat.post("/v1/licences/%s/revoke" % lic2["number"], {"reason": "fraud"})
        self.assertEqual(r.status, 200, r)
        self.restart(kill=True, clock="2030-01-07T12:00:00+07:00")
        ev = self.events(rid, "LicenceExpired")
        self.assertEqual(len(ev), 1, ev)
        # Recorded when the server is back (its clock resumed at 12:00), as
        # SLA deadlines that fell due while it was down; the data says when
        # the licence ended.
        self.assertEqual(ev[0]["at"], "2030-01-07T05:00:00.000Z")
        self.assertEqual(ev[0]["data"], {"number": lic["number"],
                                         "valid_until": "2030-01-07T04:00:00.000Z"})
        self.assertEqual(self.events(rid2, "LicenceExpired"), [])
        self.assertEqual(self.registry(lic2["number"])["status"], "revoked")
        self.restart(kill=False, clock="2030-01-08T12:00:00+07:00")
        self.assertEqual(len(self.events(rid, "LicenceExpired")), 1)

    # -- the registry's index on disk -----------------------------------------

    def registry_answers(self, queries):
        """Every page (limit 7, following cursors) of each query, as bytes,
        and the numbers they list; checks each page's shape as it goes."""
        pages, listed = {}, {}
        for q in queries:
            got, bodies, cursor = [], [], None
            for _ in range(200):
                path = "/v1/public/licences?limit=7" + ("&" + q if q else "")
                if cursor:
                    path += "&cursor=" + cursor
                r = self.w.anon.get(path)
                self.assertEqual(r.status, 200, (path, r))
                bodies.append(r.body)
                got += r.json["licences"]
                cursor = r.json["next_cursor"]
                if not cursor:
                    break
                self.assertEqual(len(r.json["licences"]), 7, path)
            whole = self.w.anon.get("/v1/public/licences?limit=500" + ("&" + q if q else ""))
            self.assertEqual(whole.json["licences"], got, q)
            pages[q] = bodies
            listed[q] = got
        return pages, listed

    def csv_answers(self, queries):
        out = {}
        for q in queries:
            r = self.w.anon.get("/v1/public/licences.csv" + ("?" + q if q else ""))
            self.assertEqual(r.status, 200, (q, r))
            self.assertEqual(r.headers.get("transfer-encoding"), "chunked")
            out[q] = r.body
        return out

    def test_registry_pages_filters_state_changes_restart_and_kill_9(self):
        p1, p2 = prefix(), prefix()
        w1 = "lic-" + p1.lower()
        self.w.publish(issue_workflow(w1, number=p1 + "-{seq:5}", valid_for="P30D"))
        w2 = "lic-" + p2.lower()
        d = issue_workflow(w2, number=p2 + "-{seq:5}")
        d["steps"]["licence"]["public_fields"] = ["business_name", "district", "seats"]
        self.w.publish(d)
        districts = ["bang-rak", "pathum-wan", "khlong-toei"]
        model = []  # [number, workflow, district, seats or None, status], in issue order
        for i in range(150):
            wid = w2 if i % 3 == 0 else w1
            district = districts[i % 3 if i % 2 else 0]
            seats = 7000 + i
            _, lic = self.issue(wid, business_name="Shop %d" % i, district=district,
                                seats=seats)
            model.append([lic["number"], wid, district, seats if wid == w2 else None, "valid"])
        # Revoked: three of each workflow; then w1's others expire (P30D).
        for k in (3, 4, 50, 51, 99, 100):
            r = self.w.plat.post("/v1/licences/%s/revoke" % model[k][0], {"reason": "x%d" % k})
            self.assertEqual(r.status, 200, r)
            model[k][4] = "revoked"
        before = self.w.anon.get("/v1/public/licences?status=valid&workflow=" + w1 + "&limit=500")
        self.assertIn(model[1][0], [x["number"] for x in before.json["licences"]])
        self.clock("2030-02-07T09:00:00+07:00")
        for m in model:
            if m[1] == w1 and m[4] == "valid":
                m[4] = "expired"
        for i in range(150, 310):
            wid = w1 if i % 2 else w2
            _, lic = self.issue(wid, business_name="Shop %d" % i, district="bang-rak",
                                seats=7000 + i)
            model.append([lic["number"], wid, "bang-rak", 7000 + i if wid == w2 else None,
                          "valid"])
        r = self.w.plat.post("/v1/licences/%s/revoke" % model[200][0], {"reason": "late"})
        self.assertEqual(r.status, 200, r)
        model[200][4] = "revoked"
        ours = (w1, w2)
        names = {m[0]: "Shop %d" % i for i, m in enumerate(model)}

        def want(pred):
            return [m[0] for m in reversed(model) if pred(m)]

        queries = {
            "": lambda m: True,
            "workflow=" + w1: lambda m: m[1] == w1,
            "workflow=" + w2: lambda m: m[1] == w2,
            "status=valid": lambda m: m[4] == "valid",
            "status=expired": lambda m: m[4] == "expired",
            "status=revoked": lambda m: m[4] == "revoked",
            "q=PATHUM-wan": lambda m: m[2] == "pathum-wan",
            "q=7003": lambda m: m[3] == 7003,
            "q=shop%2012": lambda m: "shop 12" in names[m[0]].lower(),
            "workflow=%s&status=revoked" % w2: lambda m: m[1] == w2 and m[4] == "revoked",
            "workflow=%s&status=valid" % w1: lambda m: m[1] == w1 and m[4] == "valid",
        }
        pages, listed = self.registry_answers(list(queries))
        for q, pred in queries.items():
            got = [x["number"] for x in listed[q] if x["workflow"] in ours]
            self.assertEqual(got, want(pred), q)
            for x in listed[q]:
                if x["workflow"] in ours:
                    m = model[[n[0] for n in model].index(x["number"])]
                    self.assertEqual(x["status"], m[4], x)
        self.assertGreater(len(pages["workflow=" + w1]), 10)
        # An entry as listed is the lookup's without document and jws; the
        # revoked and the expired ones show how they changed.
        by_num = {x["number"]: x for x in listed[""]}
        for k in (1, 3, 200, 300):
            one = self.registry(model[k][0])
            self.assertEqual({a: b for a, b in one.items() if a not in ("document", "jws")},
                             by_num[model[k][0]])
        self.assertEqual(by_num[model[3][0]]["reason"], "x3")
        self.assertEqual(by_num[model[3][0]]["revoked_at"], "2030-01-07T02:00:00.000Z")
        self.assertEqual(by_num[model[1][0]]["status"], "expired")
        self.assertEqual(by_num[model[300][0]]["status"], "valid")
        self.assertEqual(by_num[model[0][0]]["fields"],
                         {"business_name": "Shop 0", "district": "bang-rak", "seats": 7000})
        # The CSV: more than one page of the index (256 rows), filtered or not.
        csvq = ["", "workflow=" + w1, "status=valid", "q=bang-RAK", "workflow=%s&status=expired"
                % w1]
        csvs = self.csv_answers(csvq)
        for q, body in csvs.items():
            rows = body.decode().split("\r\n")[1:-1]
            nums = [row.split(",", 1)[0] for row in rows]
            ours_rows = [n for n in nums if n.startswith((p1, p2))]
            pred = {"": lambda m: True, "workflow=" + w1: lambda m: m[1] == w1,
                    "status=valid": lambda m: m[4] == "valid",
                    "q=bang-RAK": lambda m: m[2] == "bang-rak",
                    "workflow=%s&status=expired" % w1: lambda m: m[1] == w1 and
                    m[4] == "expired"}[q]
            self.assertEqual(ours_rows, want(pred), q)
        self.assertGreater(len(want(lambda m: m[2] == "bang-rak")), 256)
        # The same answers, byte for byte, after a clean restart and a kill -9,
        # and the entries on disk are those the log gives (osse replay --data).
        for kill in (False, True):
            self.restart(kill=kill, clock="2030-02-07T09:00:00+07:00")
            again, _ = self.registry_answers(list(queries))
            self.assertEqual(again, pages, "kill=%s" % kill)
            self.assertEqual(self.csv_answers(csvq), csvs, "kill=%s" % kill)
            _, rec = replay_data(self.server.data_dir)
            # Each licence's request: its list and registry entries, its
            # licence number's lookup entry (nam/; its tracking code has
            # none: engine/trackcode.h), and the expiry of a valid licence
            # (due/).
            valid = sum(1 for m in model if m[4] == "valid")
            self.assertEqual(rec["indexes"], {"equal": 3 * len(model) + valid, "missing": 0,
                                              "different": 0, "extra": 0})
        # A kill -9 while licences are issued and revoked: the entries on
        # disk are still exactly the log's.
        stop, issued = threading.Event(), []

        def load(client, revoker):
            while not stop.is_set():
                try:
                    r = client.post("/v1/requests", {"workflow": w2, "form": good_form()})
                    v = self.server.client(self.w.admin_token).get(
                        "/v1/requests/" + r.json["id"]) if r.status == 201 else None
                    num = v.json["licence"]["number"] if v and v.status == 200 else None
                    if num and len(issued) % 3 == 0:
                        revoker.post("/v1/licences/%s/revoke" % num, {"reason": "load"})
                    if num:
                        issued.append(num)
                except Exception:  # the server is gone: the kill
                    time.sleep(0.01)
        threads = [threading.Thread(target=load, args=(
            self.server.client(self.w.portal.token), self.server.client(self.w.admin_token)))
            for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(issued) < 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.server.kill()
        stop.set()
        for t in threads:
            t.join()
        self.restart(kill=True, clock="2030-02-07T09:00:00+07:00")
        _, rec = replay_data(self.server.data_dir)
        ix = rec["indexes"]
        self.assertEqual((ix["missing"], ix["different"], ix["extra"]), (0, 0, 0), ix)
        self.assertGreaterEqual(ix["equal"], 3 * (len(model) + len(issued)))

    # -- revocation ----------------------------------------------------------

    def test_revocation_rights_and_errors(self):
        w = self.w
        wid = self.publish(number=prefix() + "-{seq:3}", agency=w.A)
        rid, lic = self.issue(wid)
        rid2, lic2 = self.issue(wid)
        num, path = lic["number"], "/v1/licences/%s/revoke" % lic["number"]
        before = w.log_size()
        # Bad bodies and wrong callers change nothing.
        for body, status in [({}, 422), ({"reason": ""}, 422), ({"reason": 5}, 422),
                             ({"reason": "x", "extra": 1}, 422), ({"reason": "x" * 5000}, 422)]:
            r = w.plat.post(path, body)
            self.assertEqual(r.status, status, (body, r))
            self.assertEqual(r.json["error"]["code"], "invalid_request", r)
        r = w.plat.post(path, raw="{\"reason\":\"" + "x" * (10 << 20) + "\"}")
        self.assertEqual(r.status, 413, r)
        r = w.plat.post(path, raw="{\"reason\":")
        self.assertEqual(r.status, 400, r)
        r = w.ag[w.B].post(path, {"reason": "not mine"})
        self.assertEqual((r.status, r.error_code), (403, "forbidden"), r)
        r = w.portal.post(path, {"reason": "not mine"})
        self.assertEqual(r.status, 403, r)
        r = w.anon.post(path, {"reason": "who"})
        self.assertEqual(r.status, 401, r)
        r = w.plat.post("/v1/licences/NO-SUCH-1/revoke", {"reason": "x"})
        self.assertEqual((r.status, r.error_code), (404, "not_found"), r)
        self.assertEqual(w.log_size(), before)
        self.assertEqual(self.registry(num)["status"], "valid")
        # The issuing agency revokes one, the platform the other.
        r = w.ag[w.A].post(path, {"reason": "premises closed by court order"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "revoked")
        self.assertEqual(r.json["reason"], "premises closed by court order")
        self.assertEqual(r.json["revoked_at"], "2030-01-07T02:00:00.000Z")
        self.assertEqual(r.json["number"], num)
        self.assertNotIn("jws", r.json)
        self.assertEqual(self.registry(num)["status"], "revoked")
        self.assertEqual(self.registry(num)["reason"], "premises closed by court order")
        self.assertEqual(w.view(rid)["licence"]["status"], "revoked")
        ev = self.events(rid, "LicenceRevoked")
        self.assertEqual(len(ev), 1)
        self.assertEqual(ev[0]["data"], {"number": num,
                                         "reason": "premises closed by court order"})
        self.assertEqual(ev[0]["actor"]["kind"], "agency")
        r = w.plat.post(path, {"reason": "again"})
        self.assertEqual((r.status, r.error_code), (409, "already_revoked"), r)
        r = w.plat.post("/v1/licences/%s/revoke" % lic2["number"], {"reason": "by the platform"})
        self.assertEqual(r.status, 200, r)
        # A licence without an issuing agency: only the platform.
        wid2 = self.publish(number=prefix() + "-{seq:3}")
        _, lic3 = self.issue(wid2)
        r = w.ag[w.A].post("/v1/licences/%s/revoke" % lic3["number"], {"reason": "x"})
        self.assertEqual(r.status, 403, r)
        # The tracking view by code shows the status too.
        code = w.view(rid)["tracking_code"]
        t = w.anon.get("/v1/track/" + code)
        self.assertEqual(t.json["licence"]["status"], "revoked", t)

    def test_licence_after_an_agency_decision_and_replay_digest(self):
        w = self.w
        wid = self.publish(number=prefix() + "-{bbbb}-{seq:4}", agency=w.A, task=w.A)
        req = w.submit(wid, good_form())
        self.assertIsNone(w.view(req["id"])["licence"])
        w.decide(req["id"], "review", "approve", agency=w.A)
        v = w.view(req["id"])
        self.assertEqual(v["status"], "completed")
        self.assertEqual(v["licence"]["status"], "valid")
        w.plat.post("/v1/licences/%s/revoke" % v["licence"]["number"], {"reason": "test"})
        self.clock("2032-01-01T00:00:00+07:00")
        live = w.plat.get("/v1/admin/digest").json["digest"]
        data = self.server.data_dir
        self.restart(kill=False)
        self.assertEqual(self.server.stop(), 0)
        out = run_osse("replay", "--data", data).stdout.decode().strip().splitlines()
        self.assertEqual(out[-1], live)
        self.server.start()
        self.w.plat = self.server.client(self.w.admin_token)
        self.assertEqual(self.w.plat.get("/v1/admin/digest").json["digest"], live)
        self.assertTrue(any(e["type"] == "LicenceRevoked" for e in log_events(self.w.plat)))


if __name__ == "__main__":
    main()
