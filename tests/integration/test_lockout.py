"""test_lockout.py: no lock-out (SPEC §10).

- Revoking the last platform principal that is not revoked is refused with
  409 and a message that says why; with a second one it is allowed, and the
  second then becomes the last.
- `osse token --data DIR` with the server stopped makes a new platform
  principal through the log (a PrincipalCreated that `osse verify` accepts
  and `osse replay` rebuilds to the live digest), writes its token to
  <data>/admin.token (mode 0600) and prints where, never the token.
- A second `osse serve`, and `osse token`, on a folder a server holds say so
  in words and exit non-zero; `osse token` never creates a data folder.

Python standard library only.
"""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import OSSE_BIN, Server, assert_error, main  # noqa: E402

IN_USE = "is in use by another osse process"


def osse(*args, timeout=60):
    return subprocess.run([OSSE_BIN] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=timeout)


class TestLockout(unittest.TestCase):
    def setUp(self):
        self.srv = Server().start()

    def tearDown(self):
        self.srv.cleanup()

    def plat(self, token=None):
        return self.srv.client(token or self.srv.admin_token())

    def platform_ids(self, c):
        r = c.get("/v1/principals")
        self.assertEqual(r.status, 200, r)
        return [p["id"] for p in r.json["principals"]
                if p["role"] == "platform" and not p["revoked"]]

    def test_last_platform_principal_cannot_be_revoked(self):
        c = self.plat()
        [admin] = self.platform_ids(c)
        before = c.get("/v1/log").json["events"]
        r = c.delete("/v1/principals/" + admin)
        assert_error(self, r, 409, "conflict")
        msg = r.json["error"]["message"]
        self.assertIn("last platform principal", msg)
        self.assertIn("osse token", msg)
        self.assertEqual(c.get("/v1/log").json["events"], before, "the refusal wrote something")
        self.assertEqual(c.get("/v1/principals").status, 200)
        # With a second platform principal the first may go; then the
        # second is the last.
        r = c.post("/v1/principals", {"role": "platform", "name": "second"})
        self.assertEqual(r.status, 201, r)
        second = self.srv.client(r.json["token"])
        r = second.delete("/v1/principals/" + admin)
        self.assertEqual((r.status, r.json.get("revoked")), (200, True), r)
        self.assertEqual(c.get("/v1/principals").status, 401)
        r = second.delete("/v1/principals/" + self.platform_ids(second)[0])
        assert_error(self, r, 409, "conflict")
        # Revoking an already revoked one still answers as before.
        r = second.delete("/v1/principals/" + admin)
        self.assertEqual((r.status, r.json.get("revoked")), (200, True), r)
        # Other roles are never guarded.
        r = second.post("/v1/principals", {"role": "auditor", "name": "only auditor"})
        self.assertEqual(second.delete("/v1/principals/" + r.json["id"]).status, 200)

    def test_osse_token_mints_a_platform_principal_offline(self):
        data = self.srv.data_dir
        path = os.path.join(data, "admin.token")
        old = self.srv.admin_token()
        pk = self.plat().get("/v1/log/public-key").json["verifier_key"]
        self.assertEqual(self.srv.stop(), 0, self.srv.stderr_tail())
        os.unlink(path)  # the token is lost
        p = osse("token", "--data", data)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertIn(path, out)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        new = self.srv.admin_token()
        self.assertTrue(new.startswith("osse_") and new != old, new)
        self.assertNotIn(new, out + p.stderr.decode())
        self.assertFalse(os.path.exists(path + ".tmp"))
        # The new principal is a real event: served, listed, verified and
        # replayed to the live digest.
        self.srv.start()
        c = self.plat(new)
        ids = self.platform_ids(c)
        self.assertEqual(len(ids), 2, ids)
        self.assertEqual(self.plat(old).get("/v1/principals").status, 200)
        evs = c.get("/v1/log").json["events"]
        minted = [e for e in evs if e["type"] == "PrincipalCreated" and
                  e["data"]["role"] == "platform" and e["data"]["id"] in ids]
        self.assertEqual(len(minted), 2, evs)
        self.assertIn(minted[-1]["data"]["id"], out)
        self.assertEqual(minted[-1]["actor"]["kind"], "system")
        self.assertGreaterEqual(minted[-1]["at"], minted[0]["at"])
        # The old admin may be revoked now: the minted one remains.
        self.assertEqual(c.delete("/v1/principals/" + minted[0]["data"]["id"]).status, 200)
        live = c.get("/v1/admin/digest").json["digest"]
        self.assertEqual(self.srv.stop(), 0, self.srv.stderr_tail())
        p = osse("replay", "--data", data)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode().strip().splitlines()[-1], live)
        tmp = tempfile.mkdtemp(prefix="osse-lockout-")
        try:
            exp = os.path.join(tmp, "log.bin")
            with open(exp, "wb") as f:
                p = subprocess.run([OSSE_BIN, "export", "--data", data], stdout=f,
                                   stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            p = osse("verify", exp, "--key", pk)
            self.assertEqual(p.returncode, 0, p.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_a_second_process_on_the_folder_says_so(self):
        data = self.srv.data_dir
        tok = self.srv.admin_token()
        p = osse("serve", "--data", data, "--listen", "127.0.0.1:0", timeout=30)
        self.assertNotEqual(p.returncode, 0)
        err = p.stderr.decode()
        self.assertIn("the data folder %s %s" % (data, IN_USE), err)
        self.assertNotIn("IO error", err)
        p = osse("token", "--data", data, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("the data folder %s %s" % (data, IN_USE), p.stderr.decode())
        self.assertEqual(self.srv.admin_token(), tok)
        self.assertEqual(self.plat().get("/v1/principals").status, 200)

    def test_osse_token_never_creates_a_folder(self):
        tmp = tempfile.mkdtemp(prefix="osse-lockout-")
        try:
            nowhere = os.path.join(tmp, "typo")
            p = osse("token", "--data", nowhere)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("no osse log", p.stderr.decode())
            self.assertFalse(os.path.exists(nowhere))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
