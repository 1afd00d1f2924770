"""test_export_format.py: docs/audit.md is enough to write a verifier.

audit_verifier.py was written from docs/audit.md alone. Here it and `osse
verify` must agree on real exports (whole, and ranges with a frontier and
heads inside) and on every single-byte change, every truncation and one
extra byte of a small one: both accept the original, both refuse every
damaged copy (SPEC §6: any changed, missing or extra byte fails).
"""

import base64
import os
import random
import subprocess
import tempfile
import time
import unittest

import audit_verifier
from osse_harness import OSSE_BIN, Server, World, main
from test_audit import workload


def osse_verify(path, key):
    p = subprocess.run([OSSE_BIN, "verify", path, "--key", key], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def mp_str(s):
    b = s.encode()
    return (bytes([0xa0 | len(b)]) if len(b) < 32 else bytes([0xd9, len(b)])) + b


def event_bytes(stream, typ):
    """One event's msgpack bytes as docs/audit.md §3.4 lays them out."""
    return (b"\x87" + mp_str("seq") + b"\x01" + mp_str("stream") + mp_str(stream) +
            mp_str("version") + b"\x01" + mp_str("type") + mp_str(typ) + mp_str("at") + b"\x00" +
            mp_str("actor") + b"\x82" + mp_str("kind") + mp_str("system") + mp_str("id") +
            mp_str("osse") + mp_str("data") + b"\x80")


class TestEventTypes(unittest.TestCase):
    """The independent verifier refuses what docs/audit.md §3.4 calls
    damage: a type not in SPEC §5's list, or in another kind's stream."""

    def test_types_and_stream_kinds(self):
        self.assertEqual(audit_verifier.decode_event(event_bytes("request/r-1", "StepOpened")), 1)
        self.assertEqual(audit_verifier.decode_event(event_bytes("agency/dbd", "AgencyUpdated")), 1)
        for stream, typ in (("request/r-1", "StepOpned"), ("request/r-1", "stepopened"),
                            ("request/r-1", "AgencyUpdated"), ("agency/dbd", "StepOpened"),
                            ("request/", "StepOpened"), ("request", "StepOpened")):
            with self.assertRaises(audit_verifier.Bad, msg="%s in %s" % (typ, stream)):
                audit_verifier.decode_event(event_bytes(stream, typ))


class TestExportFormat(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server().start()
        w = World(cls.srv)
        wid = w.workflow()
        workload(w, wid, 6, rng=random.Random(3))
        time.sleep(1.2)  # a head inside the log, not only at its end
        workload(w, wid, 6, rng=random.Random(4))
        cls.key = w.anon.get("/v1/log/public-key").json["verifier_key"]
        cls.pk = base64.b64decode(w.anon.get("/v1/log/public-key").json["public_key"])
        assert cls.srv.stop() == 0
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()
        cls.tmp.cleanup()

    def export(self, *rng):
        p = subprocess.run([OSSE_BIN, "export", "--data", self.srv.data_dir] + list(rng),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                           check=True)
        return p.stdout

    def agree(self, blob, name="x.bin"):
        path = os.path.join(self.tmp.name, name)
        with open(path, "wb") as f:
            f.write(blob)
        rc, err = osse_verify(path, self.key)
        mine = audit_verifier.verify(blob, self.pk)
        return rc, err, mine

    def test_real_exports_verify_both_ways(self):
        whole = self.export()
        n = int.from_bytes(whole[54 + whole[13]:62 + whole[13]], "big")
        self.assertGreater(n, 20)
        for rng in ([], ["--from", "1", "--to", "7"], ["--from", "5", "--to", str(n - 2)],
                    ["--from", str(n), "--to", str(n)]):
            blob = self.export(*rng)
            rc, err, mine = self.agree(blob)
            self.assertEqual(rc, 0, (rng, err))
            self.assertIsNone(mine, rng)
        # The whole log holds heads before the final one (heads section).
        olen = whole[13]
        k = whole[62 + olen]
        self.assertGreater(int.from_bytes(whole[63 + olen + 32 * k:67 + olen + 32 * k], "big"), 0)

    def test_every_byte_of_a_small_export(self):
        blob = self.export("--from", "3", "--to", "5")
        self.assertIsNone(audit_verifier.verify(blob, self.pk))
        disagree = []
        damaged = []
        for i in range(len(blob)):
            b = bytearray(blob)
            b[i] ^= 0x01 if i % 2 else 0x80
            damaged.append(("flip %d" % i, bytes(b)))
        for cut in range(0, len(blob), 3):
            damaged.append(("cut %d" % cut, blob[:cut]))
        damaged.append(("extra byte", blob + b"\0"))
        for what, b in damaged:
            rc, err, mine = self.agree(b)
            if rc == 0 or mine is None:
                disagree.append((what, rc, err.strip(), mine))
        self.assertEqual(disagree, [])


if __name__ == "__main__":
    main()
