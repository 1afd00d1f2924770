"""test_corrupt_log.py: a log that holds an event type SPEC §5 does not list
("a type not in it is a damaged log"), or a type in a stream of another
kind, stops `osse serve` at start and `osse replay --data`, with a message
that names the event's seq and the type as stored.

The damage is made on disk, where a bad disk or a hand edit would make it:
the server is killed (SIGKILL) right after it acknowledged an event, so the
event is in RocksDB's write-ahead log only, and the test rewrites the type's
name there with one of the same length and recomputes the record's CRC32C
(RocksDB's log format: 32 KiB blocks of records `crc32c masked (4, LE),
length (2, LE), type (1), payload`). A rewrite to the very same name, CRC
recomputed the same way, must start cleanly: that shows the patching itself
is sound and that RocksDB hands the patched bytes to osse.
"""

import os
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from osse_harness import OSSE_BIN, Server  # noqa: E402

BLOCK = 32768


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


TABLE = _crc32c_table()


def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = TABLE[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def rewrite_wal(path, old, new):
    """Replaces old by new (same length) in the one full record holding it."""
    assert len(old) == len(new)
    with open(path, "rb") as f:
        b = bytearray(f.read())
    at = b.find(old)
    assert at >= 0 and b.find(old, at + 1) < 0, "%r not found once in %s" % (old, path)
    off = 0
    while off + 7 <= len(b):
        if BLOCK - off % BLOCK < 7:  # a block's tail too short for a header is padding
            off += BLOCK - off % BLOCK
            continue
        length, kind = struct.unpack_from("<HB", b, off + 4)
        start, end = off + 7, off + 7 + length
        if start <= at < end:
            assert kind == 1, "record type %d: only full records are rewritten" % kind
            b[at:at + len(old)] = new
            struct.pack_into("<I", b, off, masked(crc32c(bytes(b[off + 6:end]))))
            with open(path, "wb") as f:
                f.write(bytes(b))
            return
        off = end
    raise AssertionError("no record holds offset %d" % at)


class CorruptLog(unittest.TestCase):
    def setUp(self):
        self.srv = Server()
        self.addCleanup(self.srv.cleanup)

    def damaged_folder(self, new_name):
        """A folder whose 2nd event (AgencyUpdated of agency/dlt, after the
        first PrincipalCreated) is stored with the type new_name."""
        self.srv.start()
        c = self.srv.client(self.srv.admin_token())
        r = c.put("/v1/agencies/dlt", {"name": "Department of Land Transport"})
        self.assertEqual(r.status, 201, r.body)
        log = c.get("/v1/log?after=0").json["events"]
        self.assertEqual([(e["seq"], e["type"]) for e in log],
                         [(1, "PrincipalCreated"), (2, "AgencyUpdated")])
        self.srv.kill()
        d = os.path.join(self.srv.data_dir, "log")
        wals = [f for f in os.listdir(d) if f.endswith(".log")]
        self.assertEqual(len(wals), 1, wals)
        rewrite_wal(os.path.join(d, wals[0]), b"AgencyUpdated", new_name)

    def serve_fails(self, *wants):
        p = subprocess.run([OSSE_BIN, "serve", "--data", self.srv.data_dir, "--listen",
                            "127.0.0.1:0"], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=60)
        err = p.stderr.decode("utf-8", "replace")
        self.assertNotEqual(p.returncode, 0, err)
        self.assertNotIn(b"listening", p.stdout)
        for w in wants:
            self.assertIn(w, err)
        p = subprocess.run([OSSE_BIN, "replay", "--data", self.srv.data_dir],
                           capture_output=True, timeout=60)
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 1, err)
        for w in wants:
            self.assertIn(w, err)

    def test_unknown_type_stops_the_server(self):
        self.damaged_folder(b"AgencyUdpated")
        self.serve_fails("event 2 is damaged", "unknown event type", "AgencyUdpated")

    def test_type_of_another_stream_kind_stops_the_server(self):
        # LicenceIssued is a type of SPEC §5, but of request streams.
        self.damaged_folder(b"LicenceIssued")
        self.serve_fails("event 2 is damaged", "LicenceIssued does not belong in stream agency/dlt")

    def test_the_same_rewrite_with_the_right_name_starts(self):
        self.damaged_folder(b"AgencyUpdated")
        self.srv.start()
        c = self.srv.client(self.srv.admin_token())
        r = c.get("/v1/agencies/dlt")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["name"], "Department of Land Transport")
        self.srv.stop()


if __name__ == "__main__":
    unittest.main()
