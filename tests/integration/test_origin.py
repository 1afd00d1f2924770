"""test_origin.py: the log's origin from outside (SPEC §6 and §10, --origin).

`osse serve --origin NAME` names the log in its checkpoints (JSON and C2SP
text note) and its verifier key; a later start with another name is refused
with a message naming both; a name that is not a C2SP key name (a space, a
'+', bytes that are not UTF-8, a Unicode space) is refused before anything
starts. The export of such a log is then checked as docs/audit.md describes
it, in Python: its closing Ed25519 signature over the SHA-256 of every byte
before it, so that a head's time, which no head signature covers, cannot be
changed either.
"""

import base64
import hashlib
import os
import socket
import subprocess
import tempfile
import time
import unittest

from osse_harness import OSSE_BIN, Server, World, main
from test_audit import ed25519_verify

ORIGIN = "example.org/log"


def serve(data, *extra):
    """A start that is expected to fail: its exit status and stderr."""
    p = subprocess.run([OSSE_BIN, "serve", "--data", data, "--listen", "127.0.0.1:0"] +
                       list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=60)
    return p.returncode, p.stderr.decode("utf-8", "replace")


class TestOrigin(unittest.TestCase):
    def setUp(self):
        self.srv = Server(extra_args=["--origin", ORIGIN]).start()

    def tearDown(self):
        if self.srv.alive():
            self.assertEqual(self.srv.stop(), 0, self.srv.stderr_tail())
        self.srv.cleanup()

    def test_origin_in_checkpoints_and_fixed(self):
        w = World(self.srv)
        w.workflow()
        time.sleep(1.3)  # a head at least every second while events arrive
        c = w.anon.get("/v1/log/checkpoint").json
        self.assertEqual(c["origin"], ORIGIN)
        key = w.anon.get("/v1/log/public-key").json
        pk = base64.b64decode(key["public_key"])
        kid = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + pk).digest()[:4]
        self.assertEqual(c["key_id"], kid.hex())
        self.assertTrue(key["verifier_key"].startswith(ORIGIN + "+" + kid.hex() + "+"))
        note = w.anon.get("/v1/log/checkpoint", headers={"Accept": "text/plain"}).body
        lines = note.decode().split("\n")
        self.assertEqual(lines[0], ORIGIN)
        self.assertEqual(lines[1], str(c["size"]))
        self.assertTrue(lines[4].startswith("\u2014 " + ORIGIN + " "), note)
        body = ("%s\n%d\n%s\n" % (ORIGIN, c["size"],
                                  base64.b64encode(bytes.fromhex(c["root"])).decode())).encode()
        self.assertTrue(ed25519_verify(pk, body, base64.b64decode(c["signature"])))
        self.assertEqual(self.srv.stop(), 0)

        # Another name at a later start: refused, and the message says why.
        rc, err = serve(self.srv.data_dir, "--origin", "other.example/log")
        self.assertNotEqual(rc, 0)
        # (the message is a logfmt value: its quotes are escaped)
        self.assertIn('\\"other.example/log\\"', err)
        self.assertIn('\\"%s\\"' % ORIGIN, err)
        self.assertIn("cannot change", err)
        # Without --origin, or with the same one, the key's name stays.
        for extra in ([], ["--origin", ORIGIN]):
            self.srv.extra_args = extra
            self.srv.start()
            c2 = self.srv.client().get("/v1/log/checkpoint").json
            self.assertEqual(c2["origin"], ORIGIN)
            self.assertEqual(self.srv.stop(), 0)

    def test_export_closing_signature(self):
        w = World(self.srv)
        w.workflow()
        self.assertEqual(self.srv.stop(), 0)
        vk = None
        with tempfile.TemporaryDirectory() as tmp:
            exp = os.path.join(tmp, "log.bin")
            with open(exp, "wb") as f:
                subprocess.run([OSSE_BIN, "export", "--data", self.srv.data_dir], stdout=f,
                               check=True, timeout=120)
            with open(exp, "rb") as f:
                blob = f.read()
            # docs/audit.md §3: the header's origin, the trailer's declared
            # length, and the closing signature over SHA-256 of the rest.
            self.assertEqual(blob[:8], b"OSSE-LOG")
            self.assertEqual(int.from_bytes(blob[8:12], "big"), 2)
            olen = int.from_bytes(blob[12:14], "big")
            self.assertEqual(blob[14:14 + olen], ORIGIN.encode())
            pk = blob[14 + olen:14 + olen + 32]
            trailer = len(blob) - 64 - 112 - 16
            self.assertEqual(blob[trailer:trailer + 8], b"OSSE-END")
            self.assertEqual(int.from_bytes(blob[trailer + 8:trailer + 16], "big"), len(blob))
            digest = hashlib.sha256(blob[:-64]).digest()
            self.assertTrue(ed25519_verify(pk, digest, blob[-64:]))
            vk = "%s+%s+%s" % (ORIGIN, hashlib.sha256(ORIGIN.encode() + b"\n\x01" + pk)
                               .digest()[:4].hex(), base64.b64encode(b"\x01" + pk).decode())
            p = subprocess.run([OSSE_BIN, "verify", exp, "--key", vk], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(p.stdout.decode().startswith("ok: %s," % ORIGIN), p.stdout)
            # The final head's time (its `at`, not in its own signature):
            # verify and replay both refuse the file, at the closing signature.
            bad = bytearray(blob)
            bad[trailer + 16 + 15] ^= 0x01
            with open(exp, "wb") as f:
                f.write(bad)
            for cmd in (["verify", exp, "--key", vk], ["replay", exp, "--key", vk],
                        ["replay", exp]):
                p = subprocess.run([OSSE_BIN] + cmd, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=120)
                self.assertNotEqual(p.returncode, 0, cmd)
                self.assertIn("at byte %d" % (len(blob) - 64), p.stderr.decode())
                self.assertIn("closing signature", p.stderr.decode())
                self.assertNotIn(b"events ", p.stdout)  # no digest printed
        self.assertIsNotNone(vk)


class TestUnicodeOrigin(unittest.TestCase):
    def test_utf8_origin_end_to_end(self):
        """A valid non-ASCII origin works everywhere one is read: the served
        checkpoint and key, export, verify and replay."""
        origin = "ex\u00e4mple.org/\u30ed\u30b0"
        srv = Server(extra_args=["--origin", origin]).start()
        try:
            w = World(srv)
            w.workflow()
            time.sleep(1.2)
            c = w.anon.get("/v1/log/checkpoint").json
            self.assertEqual(c["origin"], origin)
            vk = w.anon.get("/v1/log/public-key").json["verifier_key"]
            self.assertTrue(vk.startswith(origin + "+"))
            note = w.anon.get("/v1/log/checkpoint", headers={"Accept": "text/plain"}).body
            self.assertTrue(note.startswith(origin.encode() + b"\n"))
            digest = w.plat.get("/v1/admin/digest").json["digest"]
            self.assertEqual(srv.stop(), 0)
            with tempfile.TemporaryDirectory() as tmp:
                exp = os.path.join(tmp, "log.bin")
                with open(exp, "wb") as f:
                    subprocess.run([OSSE_BIN, "export", "--data", srv.data_dir], stdout=f,
                                   check=True, timeout=120)
                for cmd in (["verify", exp, "--key", vk], ["replay", exp, "--key", vk]):
                    p = subprocess.run([OSSE_BIN] + cmd, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, timeout=120)
                    self.assertEqual(p.returncode, 0, (cmd, p.stderr))
                self.assertEqual(p.stdout.decode().strip().splitlines()[-1], digest)
        finally:
            srv.cleanup()


class TestOriginRefused(unittest.TestCase):
    def test_bad_origins_refused_before_start(self):
        with tempfile.TemporaryDirectory() as data:
            for bad in (b"a b", b"example.org/a+b", b"example.org/\xff", b"ex\x80ample",
                        b"example.org/\xc0\xaf", b"example\xc2\xa0org", b"example\xe3\x80\x80org",
                        b""):
                p = subprocess.run([OSSE_BIN.encode(), b"serve", b"--data", data.encode(),
                                    b"--listen", b"127.0.0.1:0", b"--origin", bad],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, timeout=60)
                self.assertEqual(p.returncode, 2, bad)
                self.assertIn(b"--origin", p.stderr, bad)
            # Nothing was made: no key, no log.
            self.assertFalse(os.path.exists(os.path.join(data, "log.key")))

    def test_default_origin_is_the_host(self):
        srv = Server().start()
        try:
            key = srv.client().get("/v1/log/public-key").json["verifier_key"]
            self.assertTrue(key.startswith(socket.gethostname() + "/log+"), key)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    main()
