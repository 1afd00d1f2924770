"""test_markers.py: no marker anywhere (SPEC §8; issue 12's bar).

One server runs with the log's RocksDB compression off (the hidden
`osse serve --log-compression none`), so that every byte RocksDB writes is
searchable as is. Requests carry a unique marker (uuid-based, ASCII, so
its raw bytes and its JSON-escaped form are the same) in every personal
value osse takes in:

- the `pii` form fields at submission (a string, a citizen id, a number,
  a file's name and its bytes) and in the applicant's answer (InfoProvided:
  a new name, a new file), and the answer's `message`;
- a linkage answer (the registry of test_linkage answers a JSON object
  holding markers), and the rule inputs read from it and from a `pii`
  field (LinkageCompleted's require, TaskAutoApproved, StepSkipped);
- the words people write: a return's and an approval's reason, a
  rejection's and a withdrawal's reason;
- a refused submission whose bad `pii` values hold markers (an error never
  quotes them);
- remembered answers (Idempotency-Key on the submission, the info, the
  decisions).

A number is searched for both as its JSON text and as the log would store
it in plain (storage/event.c: msgpack float64, 0xcb and 8 bytes big-endian:
a plain number in the log is not its digits). Beside the markers a
non-personal value of the same forms (the business name: the canary) must
be found where the markers must not be, so that the search can fail.

Then:
- readers with the right see the plaintext: the submitting portal, the
  platform and the agency with the task (the tracking view), and the
  portal downloads both files with their exact bytes; the auditor reads
  "[withheld]" (form, file names, reasons) and cannot fetch the files; an
  agency whose step was skipped reads nothing;
- tracking by code shows no marker;
- every agency webhook and portal subscription body received (there are
  some: bounded polls) holds no marker, and no ciphertext either;
- the stored events (/v1/requests/{id}/events, /v1/log) hold no marker
  and do hold the canary;
- after a clean stop, every file under the data folder (log/, keys/,
  files/, everything) holds no marker, while the canary is found under
  log/. RocksDB leaves the write-ahead log (never compressed) as it is at
  a stop and flushes it to a table at the next start, so the folder is
  searched again after a second start (the plaintext still served) and
  stop: no marker, and the canary in the tables, whose properties say
  they are not compressed;
- the export (`osse export --data DIR`) holds no marker and holds the
  canary; the server's whole stderr and stdout hold no marker.

And the flag itself: not in `osse help serve`; a value other than lz4 or
none (or none at all) is a usage error, exit 2.

Python standard library only.
"""

import base64
import os
import struct
import subprocess
import sys
import time
import unittest
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import OSSE_BIN, Server, World, citizen_id, main, uniq  # noqa: E402
from test_hooks import Receiver  # noqa: E402
from test_linkage import Registry  # noqa: E402

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"

SUB_EVENTS = ["RequestSubmitted", "StepOpened", "StepSkipped", "TaskAutoApproved",
              "LinkageCompleted", "TaskDecided", "InfoProvided", "RequestCompleted",
              "RequestRejected", "RequestWithdrawn"]


def rocksdb_options(data):
    """The options RocksDB last wrote for the log (log/OPTIONS-<n>, the
    highest n): name -> value."""
    logdir = os.path.join(data, "log")
    names = [n for n in os.listdir(logdir) if n.startswith("OPTIONS-") and n[8:].isdigit()]
    assert names, os.listdir(logdir)
    newest = max(names, key=lambda n: int(n[8:]))
    out = {}
    with open(os.path.join(logdir, newest)) as f:
        for line in f:
            k, eq, v = line.strip().partition("=")
            if eq:
                out[k] = v
    return out


def marker(kind):
    """A unique ASCII marker: JSON writes it as it is."""
    return "Mk%s%s" % (kind, uuid.uuid4().hex)


def marker_number():
    """A unique number exactly representable as a double (so that its JSON
    text is the digits written here): nine random digits and .78125."""
    return float("%d.78125" % (100000000 + uuid.uuid4().int % 900000000))


def number_text(x):
    return repr(x)  # 483920117.78125


def number_stored(x):
    """x as the log stores a real (storage/event.c: msgpack float64)."""
    return b"\xcb" + struct.pack(">d", x)


def workflow(wid, reg, a, b):
    return {
        "id": wid, "title": "Markers " + wid,
        "form": {
            "applicant_id": {"type": "citizen_id", "required": True, "pii": True},
            "applicant_name": {"type": "string", "required": True, "pii": True,
                               "max_length": 80},
            "income": {"type": "number", "required": True, "pii": True},
            "id_card": {"type": "file", "pii": True},
            "business_name": {"type": "string", "required": True},
        },
        "steps": {
            "identity": {"kind": "linkage", "agency": reg,
                         "input": {"citizen_id": "form.applicant_id"},
                         "require": "data.identity.alive == true",
                         "timeout": "PT5S", "retries": 2},
            "screen": {"kind": "task", "agency": a, "after": ["identity"],
                       "auto_approve": "form.income >= 100 && data.identity.alive == true"},
            "extra": {"kind": "task", "agency": b, "after": ["identity"],
                      "when": "form.income > 1000000000"},
            "review": {"kind": "task", "agency": a, "after": ["screen", "extra"]},
        },
    }


def files_holding(root, needles):
    """{needle: [paths of the files under root holding it]}: every file,
    every byte."""
    found = {n: [] for n in needles}
    nfiles = 0
    for d, _, names in os.walk(root):
        for name in names:
            p = os.path.join(d, name)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                data = f.read()
            nfiles += 1
            for n in needles:
                if n in data:
                    found[n].append(p)
    return found, nfiles


class Markers(unittest.TestCase):

    def setUp(self):
        self.reg = Registry()
        self.server = Server(extra_args=[CLOCK, "--allow-private-urls",
                                         "--log-compression", "none"]).start()
        self.w = World(self.server)
        self.hook = None
        self.sub = None
        self.markers = []   # str, every one
        self.raw = []       # bytes: a marker as the log would store it in plain
        self.canaries = []  # str, non-personal values of the same forms

    def tearDown(self):
        for r in (self.hook, self.sub):
            if r is not None:
                r.close()
        self.reg.close()
        self.server.cleanup()

    def m(self, kind):
        v = marker(kind)
        self.markers.append(v)
        return v

    def canary(self):
        v = "Canaryshop" + uuid.uuid4().hex
        self.canaries.append(v)
        return v

    def assertNoMarker(self, data, what):
        if isinstance(data, str):
            data = data.encode()
        for mk in self.needles():
            i = data.find(mk)
            self.assertEqual(i, -1, "%s holds the marker %r: ...%r..." % (
                what, mk, data[max(0, i - 120):i + len(mk) + 40]))

    def needles(self):
        return [mk.encode() for mk in self.markers] + self.raw

    def assertCanaries(self, data, what):
        for c in self.canaries:
            self.assertTrue(c.encode() in data, "%s should hold the canary %s" % (what, c))

    def events(self, rid):
        r = self.w.plat.get("/v1/requests/%s/events" % rid)
        self.assertEqual(r.status, 200, r)
        return r

    def wait_state(self, rid, step, state, timeout=20):
        end = time.monotonic() + timeout
        while True:
            v = self.w.view(rid)
            got = {s["name"]: s["state"] for s in v["steps"]}
            if got.get(step) == state:
                return v
            if time.monotonic() > end:
                self.fail("%s of %s not %s within %ss: %s; events %s" % (
                    step, rid, state, timeout, got,
                    [e["type"] for e in self.events(rid).json["events"]]))
            time.sleep(0.05)

    def upload(self, data, name):
        r = self.w.portal.post("/v1/files", raw=data, content_type="image/jpeg",
                               headers={"Osse-Filename": urllib.parse.quote(name)})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["name"], name, r)
        return r.json

    def person(self):
        """A form and the registry's answer for it, every personal value a
        marker; the citizen id (13 digits) is one by itself."""
        cid = citizen_id()
        self.markers.append(cid)
        inc = marker_number()
        self.markers.append(number_text(inc))
        self.raw.append(number_stored(inc))
        form = {"applicant_id": cid, "applicant_name": self.m("name"), "income": inc,
                "business_name": self.canary()}
        answer = {"alive": True, "full_name": self.m("regname"),
                  "address": {"line": self.m("regaddr"), "province": self.m("regprov")}}
        self.reg.script[cid] = [("json", 200, answer)]
        return form, answer

    def scan_data_folder(self, data, tables):
        """Every byte of every file under data: no marker; the canaries
        under log/ (with tables: in RocksDB tables, each of which says it
        is not compressed)."""
        needles = self.needles() + [c.encode() for c in self.canaries]
        found, nfiles = files_holding(data, needles)
        self.assertGreater(nfiles, 5)
        for d in ("log", "keys", "files"):
            self.assertTrue(os.path.isdir(os.path.join(data, d)), d)
        for mk in self.needles():
            self.assertEqual(found[mk], [], "the marker %r in plain under the data folder" % mk)
        logdir = os.path.join(data, "log") + os.sep
        for c in self.canaries:
            self.assertTrue([p for p in found[c.encode()] if p.startswith(logdir)],
                            "the canary %s should be found under log/: %s" % (c, found[c.encode()]))
        if not tables:
            return
        ssts = [os.path.join(logdir, n) for n in os.listdir(logdir) if n.endswith(".sst")]
        self.assertTrue(ssts, os.listdir(logdir))
        for p in ssts:
            with open(p, "rb") as f:
                b = f.read()
            # rocksdb.compression: "NoCompression" (else "LZ4"; the bytes
            # of ciphertext may hold those three letters by chance).
            self.assertTrue(b"NoCompression" in b,
                            "%s: a table compressed (its properties block)" % p)
        # The tables above are the flushes' (level 0, never compressed:
        # storage/rocks.c); the options RocksDB was given say that the
        # compactions' are not either.
        opts = rocksdb_options(data)
        self.assertEqual(opts.get("compression"), "kNoCompression", opts.get("compression"))
        self.assertEqual(opts.get("bottommost_compression"), "kNoCompression")
        self.assertEqual(set(opts.get("compression_per_level", "").split(":")), {"kNoCompression"},
                         opts.get("compression_per_level"))
        for c in self.canaries:
            self.assertTrue(set(found[c.encode()]) & set(ssts),
                            "the canary %s should be found in a table: %s" % (c, found[c.encode()]))

    def test_no_marker_anywhere(self):
        w, srv = self.w, self.server
        reg_agency = "reg-" + uniq("a")
        r = w.plat.put("/v1/agencies/" + reg_agency,
                       {"name": "Registry", "lookup_url": self.reg.url})
        self.assertIn(r.status, (200, 201), r)
        self.hook = Receiver()
        r = w.plat.put("/v1/agencies/" + w.A, {"name": "Agency A", "webhook_url": self.hook.url})
        self.assertEqual(r.status, 200, r)
        self.hook.secret = r.json["webhook_secret"].encode()
        self.sub = Receiver()
        r = w.portal.put("/v1/subscriptions/" + uniq("sub"),
                         {"url": self.sub.url, "events": SUB_EVENTS})
        self.assertIn(r.status, (200, 201), r)
        self.sub.secret = r.json["secret"].encode()
        wid = uniq("mk")
        w.publish(workflow(wid, reg_agency, w.A, w.B))

        # A refused submission: its personal values are never quoted.
        bad = {"applicant_id": self.m("badcid"), "applicant_name": self.m("long") * 3,
               "income": self.m("badinc"), "business_name": "x"}
        r = w.portal.post("/v1/requests", {"workflow": wid, "form": bad})
        self.assertEqual(r.status, 422, r)
        self.assertNoMarker(r.body, "a 422's answer")

        # 1. The whole path: a file, the linkage, the rules, a return with
        # a reason, the applicant's answer (a new name, a new file, a
        # message), an approval with a reason.
        form1, answer1 = self.person()
        card_bytes = b"\xff\xd8\xff\xe0 JFIF " + self.m("filebytes").encode() + b" end"
        card = self.upload(card_bytes, self.m("filename") + ".jpg")
        form1["id_card"] = card["id"]
        r = w.portal.post("/v1/requests", {"workflow": wid, "form": form1},
                          headers={"Idempotency-Key": uniq("k")})
        self.assertEqual(r.status, 201, r)
        rid1, code1 = r.json["id"], r.json["tracking_code"]
        self.assertNoMarker(r.body, "the submission's answer")
        v = self.wait_state(rid1, "review", "open")
        self.assertEqual({s["name"]: s["state"] for s in v["steps"]},
                         {"identity": "done", "screen": "approved", "extra": "skipped",
                          "review": "open"}, v)
        want1 = dict(form1, id_card=card)
        self.assertEqual(v["form"], want1, "the platform reads the plaintext")

        why_return = self.m("return")
        r = w.ag[w.A].post("/v1/tasks/%s/review/decision" % rid1,
                           {"outcome": "return", "reason": why_return},
                           headers={"Idempotency-Key": uniq("k")})
        self.assertEqual(r.status, 200, r)
        name2 = self.m("name2")
        msg = self.m("message")
        card2_bytes = b"\xff\xd8\xff\xe0 " + self.m("filebytes2").encode()
        card2 = self.upload(card2_bytes, self.m("filename2") + ".jpg")
        info = {"step": "review", "form": {"applicant_name": name2, "id_card": card2["id"]},
                "message": msg}
        key = uniq("k")
        r = w.portal.post("/v1/requests/%s/info" % rid1, info, headers={"Idempotency-Key": key})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["form"]["applicant_name"], name2, r.json)
        # The remembered answer, rendered again for its reader.
        again = w.portal.post("/v1/requests/%s/info" % rid1, info,
                              headers={"Idempotency-Key": key})
        self.assertEqual(again.status, 200, again)
        self.assertEqual(again.json["form"]["applicant_name"], name2, again.json)
        why_approve = self.m("approve")
        r = w.ag[w.A].post("/v1/tasks/%s/review/decision" % rid1,
                           {"outcome": "approve", "reason": why_approve},
                           headers={"Idempotency-Key": uniq("k")})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "completed", r.json)
        want1 = dict(form1, applicant_name=name2, id_card=card2)

        # 2. Rejected by a person, with a reason.
        form2, _ = self.person()
        rid2 = w.submit(wid, form2)["id"]
        self.wait_state(rid2, "review", "open")
        why_reject = self.m("reject")
        r = w.ag[w.A].post("/v1/tasks/%s/review/decision" % rid2,
                           {"outcome": "reject", "reason": why_reject})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "rejected", r.json)

        # 3. Withdrawn, with a reason.
        form3, _ = self.person()
        sub3 = w.submit(wid, form3)
        rid3, code3 = sub3["id"], sub3["tracking_code"]
        self.wait_state(rid3, "review", "open")
        why_withdraw = self.m("withdraw")
        r = w.portal.post("/v1/requests/%s/withdraw" % rid3, {"reason": why_withdraw})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["reason"], why_withdraw, r.json)

        # Readers with the right see the plaintext.
        for who, c in (("the portal", w.portal), ("the platform", w.plat),
                       ("the agency with the task", w.ag[w.A])):
            v1 = w.view(rid1, c)
            self.assertEqual(v1["form"], want1, who)
            steps = {s["name"]: s for s in v1["steps"]}
            self.assertEqual(steps["review"]["reason"], why_approve, (who, steps["review"]))
            v2 = w.view(rid2, c)
            self.assertEqual(v2["form"], form2, who)
            self.assertEqual(v2["reason"], why_reject, (who, v2["reason"]))
            v3 = w.view(rid3, c)
            self.assertEqual(v3["form"], form3, who)
            self.assertEqual(v3["reason"], why_withdraw, (who, v3["reason"]))
        for fid, data in ((card["id"], card_bytes), (card2["id"], card2_bytes)):
            g = w.portal.get("/v1/files/" + fid)
            self.assertEqual(g.status, 200, g)
            self.assertEqual(g.body, data, "the file's exact bytes")
            self.assertEqual(w.ag[w.A].get("/v1/files/" + fid).body, data)
            self.assertNotEqual(w.auditor.get("/v1/files/" + fid).status, 200,
                                "an auditor cannot fetch a pii file")
        # The auditor reads "[withheld]".
        withheld = "[withheld]"
        v1 = w.view(rid1, w.auditor)
        self.assertEqual(v1["form"], dict(want1, applicant_id=withheld,
                                          applicant_name=withheld, income=withheld,
                                          id_card=dict(card2, name=withheld)), v1["form"])
        self.assertEqual({s["name"]: s["reason"] for s in v1["steps"]}["review"], withheld)
        self.assertEqual(w.view(rid2, w.auditor)["reason"], withheld)
        self.assertEqual(w.view(rid3, w.auditor)["reason"], withheld)
        for rid in (rid1, rid2, rid3):
            a = w.auditor.get("/v1/requests/" + rid)
            self.assertEqual(a.status, 200, a)
            self.assertNoMarker(a.body, "the auditor's view of " + rid)
            self.assertEqual(w.ag[w.B].get("/v1/requests/" + rid).status, 403,
                             "agency B's step was skipped: no task, no read")
        # Tracking by code: no marker.
        for code in (code1, code3):
            t = w.anon.get("/v1/track/" + code)
            self.assertEqual(t.status, 200, t)
            self.assertNoMarker(t.body, "tracking by code")
            self.assertNotIn("form", t.json)

        # The stored events: sealed, never a marker; the canary in plain.
        evs = b""
        for rid in (rid1, rid2, rid3):
            r = self.events(rid)
            evs += r.body
            types = [e["type"] for e in r.json["events"]]
            for t in ("LinkageCompleted", "TaskAutoApproved", "StepSkipped"):
                self.assertIn(t, types, rid)
            lc = [e for e in r.json["events"] if e["type"] == "LinkageCompleted"][0]
            self.assertEqual(list(lc["data"]["answer"]), ["enc"], lc)
            base64.b64decode(lc["data"]["answer"]["enc"])
        self.assertNoMarker(evs, "the stored events")
        self.assertCanaries(evs, "the stored events")
        log = b""
        after = 0
        while True:
            r = w.auditor.get("/v1/log?after=%d&limit=1000" % after)
            self.assertEqual(r.status, 200, r)
            log += r.body
            if r.json["next"] is None or not r.json["events"]:
                break
            after = r.json["events"][-1]["seq"]
        self.assertNoMarker(log, "/v1/log")
        self.assertCanaries(log, "/v1/log")

        # Webhooks and subscription deliveries: some arrived (bounded
        # polls), none holds a marker, nor even ciphertext.
        # Agency A: its review opened in each request, and was answered
        # once. The portal: at least one of each event it subscribed to.
        def hook_types():
            return {p["type"] for _, _, p in list(self.hook.got)}

        def sub_types():
            return {p["event"]["type"] for _, _, p in list(self.sub.got)}

        for rec, types, want in ((self.hook, hook_types, {"StepOpened", "InfoProvided"}),
                                 (self.sub, sub_types, set(SUB_EVENTS))):
            end = time.monotonic() + 30
            while not want <= types() and time.monotonic() < end:
                rec.wait(len(rec.got) + 1, timeout=0.5)
            self.assertEqual(want - types(), set(), "deliveries missing")
        self.assertGreaterEqual(len(self.hook.wait(4, timeout=30)), 4, hook_types())
        for rec, what in ((self.hook, "an agency webhook"), (self.sub, "a subscription")):
            self.assertEqual(rec.bad, [], what)
            for _, body, _ in rec.got:
                self.assertNoMarker(body, what)
                self.assertNotIn(b'"enc"', body, what + " carries ciphertext")
        subm = [p for _, _, p in self.sub.got if p["event"]["type"] == "RequestSubmitted"]
        self.assertEqual({p["event"]["data"]["form"]["applicant_name"] for p in subm},
                         {withheld})
        self.assertEqual({p["event"]["data"]["form"]["business_name"] for p in subm},
                         set(self.canaries))

        # A clean stop; then every byte of every file under the data folder.
        # RocksDB leaves what it was given in its write-ahead log (never
        # compressed) at a stop; the next start flushes it to a table (L0,
        # never compressed), which a compaction rewrites compressed as the
        # options say: so the folder is searched twice,
        # after this stop and after a second start and stop.
        data = srv.data_dir
        self.assertEqual(srv.stop(), 0, srv.stderr_tail())
        self.scan_data_folder(data, tables=False)
        srv.start()
        portal = srv.client(w.portal.token)
        self.assertEqual(w.view(rid1, portal)["form"], want1, "plaintext after a restart")
        self.assertEqual(portal.get("/v1/files/" + card2["id"]).body, card2_bytes)
        self.assertEqual(w.view(rid1, srv.client(w.auditor.token))["form"]["income"], withheld)
        self.assertEqual(srv.stop(), 0, srv.stderr_tail())
        self.scan_data_folder(data, tables=True)

        # The export.
        exp = subprocess.run([OSSE_BIN, "export", "--data", data], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(exp.returncode, 0, exp.stderr)
        self.assertNoMarker(exp.stdout + exp.stderr, "the export")
        self.assertCanaries(exp.stdout, "the export")

        # The server's whole log output: stderr and stdout.
        with open(srv.log_path, "rb") as f:
            stderr = f.read()
        self.assertIn(b"route=/v1/requests/:id/info status=200", stderr,
                      "the log has a line per call")
        self.assertNoMarker(stderr, "the server's stderr")
        stdout = b"".join(srv.stdout_lines)
        self.assertIn(b"listening on", stdout)
        self.assertNoMarker(stdout, "the server's stdout")


class Flag(unittest.TestCase):
    """--log-compression: hidden (tests only), lz4 or none, anything else
    a usage error (exit 2, the message on stderr, nothing started)."""

    def run_osse(self, *args):
        return subprocess.run([OSSE_BIN] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=30)

    def test_hidden_and_checked(self):
        p = self.run_osse("help", "serve")
        self.assertEqual(p.returncode, 0, p)
        self.assertNotIn(b"--log-compression", p.stdout)
        data = os.path.join(os.environ.get("TMPDIR", "/tmp"), uniq("osse-mk-flag"))
        for bad in (["zstd"], ["LZ4"], [""], []):
            p = self.run_osse("serve", "--data", data, "--listen", "127.0.0.1:0",
                              "--log-compression", *bad)
            self.assertEqual(p.returncode, 2, (bad, p))
            self.assertEqual(p.stdout, b"", bad)
            self.assertIn(b"usage: osse serve", p.stderr, bad)
            if bad:
                self.assertIn(b"--log-compression wants lz4 or none", p.stderr, bad)
            self.assertFalse(os.path.exists(data), "nothing made for a bad command line")

    def test_default_compresses_all_but_the_flushes(self):
        """Without the flag: LZ4 for every level but level 0, whose tables
        are the memtables as they were (a flush costs no compression), and
        for the bottommost."""
        srv = Server(extra_args=[CLOCK]).start()
        self.addCleanup(srv.cleanup)
        self.assertEqual(srv.stop(), 0, srv.stderr_tail())
        opts = rocksdb_options(srv.data_dir)
        levels = opts.get("compression_per_level", "").split(":")
        self.assertEqual(levels[0], "kNoCompression", levels)
        self.assertGreater(len(levels), 2, levels)
        self.assertEqual(set(levels[1:]), {"kLZ4Compression"}, levels)
        self.assertEqual(opts.get("bottommost_compression"), "kLZ4Compression")


if __name__ == "__main__":
    main()
