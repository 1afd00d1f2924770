"""test_ui_audit.py: the auditor's page /ui/audit (SPEC §13, §6) in headless
Chromium against a real server.

One server with `--test-clock=TIME` for the class, with requests made
through the API; signed heads come at most every second of real time, so
the test polls GET /v1/log/checkpoint (bounded) until a head covers the log.
A second server, with a key of its own, gives a checkpoint of another log.

What is checked, through the page (tests/browser/page.js and
audit_tamper.js; no console error; screenshots at desktop and phone size):
- with nothing remembered, the page checks the latest checkpoint's signature
  and says there was nothing to compare with; it then remembers it;
- an earlier checkpoint (size m) pasted in the box, against the latest
  (size n > m): "verified" (its signature, the latest's and the RFC 6962
  consistency proof, all in the browser); the same from the checkpoint the
  page remembered in localStorage, after a reload; on a phone nothing
  scrolls sideways (the signature line wraps);
- reported as failing: the earlier checkpoint with a changed root or size
  (its signature), one of another log (no signature by this key), a pasted
  verifier key of another log (the latest's signature), and the real proof
  changed in each of its hashes, cut short, lengthened or reversed, and
  the true proofs from every other size passed off as the one from m (the
  proof);
- the page is public: no token, and it asks for nothing that needs one.
"""

import base64
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import Server, World, main  # noqa: E402
from ui_browser import open_page, run_script  # noqa: E402

START = "2030-01-07T09:00:00+07:00"
VERDICT = "document.getElementById('verdict').dataset.result"
CHECKS = "[...document.querySelectorAll('#checks li')].map(e => e.dataset.ok)"


def wait_result(*results):
    return {"waitFor": "[%s].includes(%s) && document.body.dataset.done === 'true'" % (
        ",".join("'%s'" % r for r in results), VERDICT)}


class AuditPage(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["--test-clock=" + START]).start()
        cls.base = "http://127.0.0.1:%d" % cls.server.port
        cls.w = World(cls.server)
        cls.wid = cls.w.workflow()
        cls.more(4)
        cls.m, cls.note_m = cls.head()
        cls.more(5)
        cls.n, cls.note_n = cls.head()
        assert cls.m < cls.n, (cls.m, cls.n)
        # Another log: a server with a key of its own.
        cls.other = Server(extra_args=["--test-clock=" + START]).start()
        World(cls.other)
        _, cls.note_other = cls.head(cls.other)
        cls.key_other = cls.other.client("").get("/v1/log/public-key").json["verifier_key"]

    @classmethod
    def tearDownClass(cls):
        for srv in (cls.server, cls.other):
            if srv is None:
                continue
            rc = srv.stop()
            srv.cleanup()
            assert rc == 0, "osse exited with %s" % rc

    @classmethod
    def more(cls, k):
        for _ in range(k):
            req = cls.w.submit(cls.wid)
            cls.w.decide(req["id"], "intake", "approve", agency=cls.w.A)

    @classmethod
    def head(cls, srv=None):
        """Polls (at most 15 s) until a signed head covers the whole log;
        returns (its size, its signed note)."""
        srv = srv or cls.server
        plat = srv.client(srv.admin_token())
        anon = srv.client("")
        size = plat.get("/v1/admin/digest").json["size"]
        for _ in range(150):
            cp = anon.get("/v1/log/checkpoint")
            if cp.status == 200 and cp.json["size"] == size:
                note = anon.get("/v1/log/checkpoint", headers={"Accept": "text/plain"})
                text = note.body.decode()
                if text.split("\n")[1] == str(size):
                    return size, text
            time.sleep(0.1)
        raise AssertionError("no signed head of size %d within 15 s" % size)

    def page(self, name, steps, sizes=("desktop", "phone")):
        return open_page(self.base, "/ui/audit", name, steps=steps, sizes=sizes,
                         collect={"result": VERDICT, "checks": CHECKS,
                                  "stored": "localStorage.getItem('osse.audit.checkpoint')",
                                  "width": "document.documentElement.scrollWidth"})

    def test_first_visit_checks_the_signature_and_remembers(self):
        out = self.page("audit-first", [wait_result("partial")], sizes=("desktop",))
        v = out["pages"]["desktop"]["values"]
        self.assertEqual((v["result"], v["checks"]), ("partial", ["true"]), v)
        self.assertEqual(v["stored"], self.note_n)
        self.assertIn("size %d" % self.n, out["pages"]["desktop"]["text"])

    def test_an_earlier_checkpoint_is_consistent(self):
        out = self.page("audit-verified", [
            {"fill": ["#earlier", self.note_m]}, {"click": "#verify"},
            wait_result("verified", "failed")])
        for size, page in out["pages"].items():
            v = page["values"]
            self.assertEqual(v["result"], "verified", (size, page["text"]))
            self.assertEqual(v["checks"], ["true", "true", "true"], size)
            self.assertIn("the tree of size %d extends the tree of size %d" % (self.n, self.m),
                          page["text"], size)
            self.assertEqual(v["stored"], self.note_n, "the latest is remembered (%s)" % size)
            if size == "phone":
                self.assertLessEqual(v["width"], 390, "the page scrolls sideways on a phone")

    def test_the_remembered_checkpoint_is_the_earlier_one(self):
        remember = ("(localStorage.setItem('osse.audit.checkpoint', %r), true)"
                    % self.note_m)
        out = self.page("audit-remembered", [
            wait_result("partial", "verified"), {"waitFor": remember},
            {"goto": self.base + "/ui/audit"}, wait_result("verified", "failed")],
            sizes=("desktop",))
        page = out["pages"]["desktop"]
        self.assertEqual(page["values"]["result"], "verified", page["text"])
        self.assertIn("size %d extends the tree of size %d" % (self.n, self.m), page["text"])

    def failing(self, name, steps, why):
        out = self.page(name, steps + [{"click": "#verify"}, wait_result("verified", "failed")],
                        sizes=("desktop",))
        page = out["pages"]["desktop"]
        self.assertEqual(page["values"]["result"], "failed", page["text"])
        self.assertIn(why, page["text"])
        return page

    def test_a_changed_earlier_checkpoint_fails(self):
        lines = self.note_m.split("\n")
        root = bytearray(base64.b64decode(lines[2]))
        root[5] ^= 0x40
        changed = "\n".join(lines[:2] + [base64.b64encode(bytes(root)).decode()] + lines[3:])
        self.failing("audit-changed-root", [{"fill": ["#earlier", changed]}],
                     "the earlier checkpoint: the signature does not verify")
        bigger = "\n".join(lines[:1] + [str(self.m + 1)] + lines[2:])
        self.failing("audit-changed-size", [{"fill": ["#earlier", bigger]}],
                     "the earlier checkpoint: the signature does not verify")

    def test_another_logs_checkpoint_or_key_fails(self):
        self.failing("audit-other-log", [{"fill": ["#earlier", self.note_other]}],
                     "the earlier checkpoint: no signature by the key")
        self.failing("audit-other-key", [{"fill": ["#key", self.key_other]},
                                         {"fill": ["#earlier", self.note_m]}],
                     "the latest checkpoint: no signature by the key")

    def test_a_fork_with_the_same_key_fails(self):
        data = tempfile.mkdtemp(prefix="osse-it-fork-")
        shutil.copy2(os.path.join(self.server.data_dir, "log.key"), data)
        fork = Server(data_dir=data, extra_args=["--test-clock=" + START]).start()
        try:
            w = World(fork)
            wid = w.workflow()
            for _ in range(100):
                if w.plat.get("/v1/admin/digest").json["size"] > self.m + 5:
                    break
                w.submit(wid)
            size, _ = self.head(fork)
            self.assertGreater(size, self.m)
            key = fork.client("").get("/v1/log/public-key").json["verifier_key"]
            self.assertEqual(key, self.server.client("").get("/v1/log/public-key")
                             .json["verifier_key"], "the fork signs with the same key")
            out = open_page("http://127.0.0.1:%d" % fork.port, "/ui/audit", "audit-fork",
                            sizes=("desktop",), collect={"result": VERDICT, "checks": CHECKS},
                            steps=[{"fill": ["#earlier", self.note_m]}, {"click": "#verify"},
                                   wait_result("verified", "failed")])
            page = out["pages"]["desktop"]
            self.assertEqual(page["values"]["result"], "failed", page["text"])
            self.assertEqual(page["values"]["checks"], ["true", "true", "false"])
            self.assertIn("the consistency proof does not lead to the earlier root", page["text"])
        finally:
            rc = fork.stop()
            shutil.rmtree(data, ignore_errors=True)
        self.assertEqual(rc, 0)

    def test_a_changed_proof_fails(self):
        proof = self.server.client("").get(
            "/v1/log/proof/consistency?from=%d&to=%d" % (self.m, self.n)).json
        self.assertGreaterEqual(len(proof["hashes"]), 2, proof)
        # True proofs from other sizes, passed off as the proof from m.
        others = {}
        for k in sorted({1, self.m - 1, self.m + 1, self.n - 1}):
            if 0 < k < self.n and k != self.m:
                others[str(k)] = self.server.client("").get(
                    "/v1/log/proof/consistency?from=%d&to=%d" % (k, self.n)).json["hashes"]
        rc, out, err = run_script("audit_tamper.js", {
            "url": self.base + "/ui/audit", "name": "audit-changed-proof",
            "earlier": self.note_m, "proof": proof, "others": others})
        self.assertTrue(rc == 0 and out and out["ok"], (rc, out, err[-2000:]))
        verdicts = out["verdicts"]
        self.assertEqual(len(verdicts), len(proof["hashes"]) + 3 + len(others), verdicts)
        for what, (result, text) in verdicts.items():
            self.assertEqual(result, "failed", (what, text))
            self.assertIn("consistency proof", text, what)


if __name__ == "__main__":
    main()
