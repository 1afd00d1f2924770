"""test_partitions.py: request ids carry their partition (issue 13).

A server started with --partitions 5-6 mints every new request id in
partition 5 or 6 (the id's first 10 bits: its first three hex digits shifted
right by two), both from the reserve of keys made ahead and, with
--key-reserve 0, from the submission itself; after a restart on the same data
the old requests are still there and new ids are still in 5-6. The id keeps
its text form, "r-" and 20 lowercase hex digits. A bad --partitions value
exits non-zero with a message that names the flag and writes nothing to the
data folder. Every server runs on --test-clock=TIME.
"""

import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import OSSE_BIN, Server, World, good_form, main  # noqa: E402

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
ID_RE = re.compile(r"^r-[0-9a-f]{20}$")


def partition(rid):
    return int(rid[2:5], 16) >> 2


class Partitions(unittest.TestCase):
    def setUp(self):
        self.server = None

    def tearDown(self):
        if self.server:
            rc = self.server.stop()
            self.server.cleanup()
            self.assertEqual(rc, 0)

    def submit_some(self, w, wid, n):
        ids = []
        for _ in range(n):
            rid = w.submit(wid, form=good_form())["id"]
            self.assertRegex(rid, ID_RE)
            ids.append(rid)
        return ids

    def check_in_5_6(self, ids):
        parts = [partition(rid) for rid in ids]
        self.assertTrue(all(p in (5, 6) for p in parts), list(zip(ids, parts)))
        # 40 uniform picks all in one of two partitions: 2^-39.
        self.assertEqual(set(parts), {5, 6}, "not spread over the range")

    def run_range(self, extra):
        self.server = Server(extra_args=[CLOCK, "--partitions", "5-6"] + extra).start()
        w = World(self.server)
        wid = w.workflow()
        before = self.submit_some(w, wid, 40)
        self.check_in_5_6(before)

        self.assertEqual(self.server.stop(), 0)
        self.server.start()
        w = World(self.server)  # its own agencies and portal; the old requests stay
        after = self.submit_some(w, wid, 40)
        self.check_in_5_6(after)
        for rid in before:
            r = w.plat.get("/v1/requests/" + rid)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["id"], rid)

    def test_reserved_ids_in_range(self):
        self.run_range([])

    def test_unreserved_ids_in_range(self):
        self.run_range(["--key-reserve", "0"])

    def test_default_is_every_partition(self):
        self.server = Server(extra_args=[CLOCK]).start()
        w = World(self.server)
        wid = w.workflow()
        parts = {partition(rid) for rid in self.submit_some(w, wid, 40)}
        # Over 1024 partitions, 40 ids land in at least 30 different ones
        # but for odds below 10^-9.
        self.assertGreater(len(parts), 30, parts)


class BadPartitions(unittest.TestCase):
    BAD = ["1024-1025", "0-1024", "6-5", "5", "5-", "-5", "a-b", "5-6x", " 5-6", "", "5--6",
           "99999-100000", "+5-6"]

    def test_bad_values_refused(self):
        root = tempfile.mkdtemp(prefix="osse-it-part-")
        try:
            for bad in self.BAD:
                data = os.path.join(root, "data")
                p = subprocess.run([OSSE_BIN, "serve", "--data", data, "--listen", "127.0.0.1:0",
                                    CLOCK, "--partitions", bad],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
                err = p.stderr.decode(errors="replace")
                self.assertNotEqual(p.returncode, 0, bad)
                self.assertIn("--partitions wants a range A-B", err, bad)
                self.assertIn("1023", err, bad)
                self.assertNotIn(b"listening", p.stdout, bad)
                self.assertFalse(os.path.exists(data), "%r made the data folder" % bad)
            # An existing, empty data folder stays empty.
            data = os.path.join(root, "empty")
            os.mkdir(data)
            p = subprocess.run([OSSE_BIN, "serve", "--data", data, CLOCK, "--partitions",
                                "1024-2000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
            self.assertNotEqual(p.returncode, 0)
            self.assertEqual(os.listdir(data), [])
        finally:
            subprocess.run(["rm", "-rf", root])


if __name__ == "__main__":
    main()
