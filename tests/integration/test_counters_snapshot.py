"""test_counters_snapshot.py: the counters snapshot in the views marker and
the records of open requests under opn/ (issue 13; docs/design.md "The
counters snapshot", "The start reads only open work"), over real HTTP.

The views marker (`views/6`) holds, after the log's last seq, what a start
rebuilds today from every request: the counts by status, the task rows of
GET /metrics, the licence numbers' counters per workflow and year, the
digest's sum, the number of requests and the first submission. opn/ holds
the record of each request not in a final status, in the order of
submission (req/ an ended one's). Every start that reads every record
(--check-views) checks both against what it rebuilt, and refuses to start
on a difference (unless --rebuild-views).

- A mix (requests approved, rejected, withdrawn and open, in a workflow
  whose SLAs breach; licences under a template with a year, in two years,
  and under one without) survives a clean restart and a kill -9 with the
  same GET /metrics counts, GET /v1/stats and GET /v1/admin/digest, the
  start reading its records (no snapshot error); the licence numbers go on
  from where they stood; `osse replay --data` finds every record and index
  entry equal, none missing, different or extra.
- A marker whose snapshot is tampered with (the number of requests, one
  more) stops the start with an ERROR line naming the field, again at the
  next try, and `--rebuild-views` starts it, with the same answers; the
  same rewrite with the right number starts (the patching is sound).
- An opn/ record moved to another seq (its key's last byte changed) stops
  every start, which names it, and `osse replay --data` finds a record
  extra; `--rebuild-views` starts it.
- A folder whose marker is `views/5` or `views/4` (every `views/6` key in
  the log's write-ahead log renamed) is replayed and migrated once, then
  read from its records, its requests tracked by their codes, and `osse
  replay --data` finds every index entry equal.

The damage is made where a bad disk or a hand edit would make it: the
server is killed (SIGKILL), so the last batches are in RocksDB's
write-ahead log only, and the test rewrites bytes there and recomputes the
CRC32C of each physical record it touched (test_corrupt_log.py's format
and checksum).
"""

import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (OSSE_BIN, Server, World, good_form, main, replay_data,  # noqa: E402
                          run_osse, uniq)
from test_corrupt_log import BLOCK, crc32c, masked  # noqa: E402
from test_licences import issue_workflow  # noqa: E402

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
MARKER = b"views/6"
COUNTED = ("osse_requests{", "osse_open_tasks{", "osse_sla_breaches{")


def wal_path(data_dir):
    d = os.path.join(data_dir, "log")
    wals = sorted((f for f in os.listdir(d) if f.endswith(".log")), key=lambda f: int(f[:-4]))
    assert wals, os.listdir(d)
    return os.path.join(d, wals[-1])


def wal_records(b):
    """The logical records of a write-ahead log (a batch each): a list of
    (payload, physical offset of each payload byte)."""
    out, cur, pos, off = [], bytearray(), [], 0
    while off + 7 <= len(b):
        if BLOCK - off % BLOCK < 7:  # a block's tail too short for a header is padding
            off += BLOCK - off % BLOCK
            continue
        length, kind = struct.unpack_from("<HB", b, off + 4)
        start, end = off + 7, off + 7 + length
        if kind == 0 and length == 0:  # preallocated zeros: the end
            break
        assert kind in (1, 2, 3, 4), "record type %d" % kind
        if kind in (1, 2):
            cur, pos = bytearray(), []
        cur += b[start:end]
        pos += range(start, end)
        if kind in (1, 4):
            out.append((bytes(cur), pos))
        off = end
    return out


def wal_patch(path, edits):
    """edits: (physical offset, new byte); each physical record touched gets
    its CRC recomputed."""
    with open(path, "rb") as f:
        b = bytearray(f.read())
    touched = set()
    for at, v in edits:
        b[at] = v
        touched.add(at)
    off = 0
    while off + 7 <= len(b):
        if BLOCK - off % BLOCK < 7:
            off += BLOCK - off % BLOCK
            continue
        length, kind = struct.unpack_from("<HB", b, off + 4)
        if kind == 0 and length == 0:
            break
        end = off + 7 + length
        if any(off + 7 <= t < end for t in touched):
            struct.pack_into("<I", b, off, masked(crc32c(bytes(b[off + 6:end]))))
        off = end
    with open(path, "wb") as f:
        f.write(bytes(b))


def varint(b, i):
    v, shift = 0, 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if not c & 0x80:
            return v, i
        shift += 7


def last_put(path, key, klen):
    """The value of the last put in the write-ahead log of a side record
    whose key (klen bytes) starts with key: (its bytes, the physical offset
    of each)."""
    with open(path, "rb") as f:
        b = f.read()
    found, head = None, bytes([klen + 1]) + b"K"  # the side records' 'K', their varint length
    for payload, pos in wal_records(b):
        i = payload.rfind(key)
        while i >= 0:
            if i > 1 and payload[i - 2:i] == head:
                n, j = varint(payload, i + klen)
                found = (payload[j:j + n], pos[j:j + n])
                break
            i = payload.rfind(key, 0, i)
    assert found, "no put of %r in %s" % (key, path)
    return found


def last_put_key(path, key, klen):
    """The physical offsets of the key (klen bytes, starting with key) of
    the last such put in the write-ahead log."""
    with open(path, "rb") as f:
        b = f.read()
    found, head = None, bytes([klen + 1]) + b"K"
    for payload, pos in wal_records(b):
        i = payload.rfind(key)
        while i >= 0:
            if i > 1 and payload[i - 2:i] == head:
                found = pos[i:i + klen]
                break
            i = payload.rfind(key, 0, i)
    assert found, "no put of %r in %s" % (key, path)
    return found


def byte_at(path, pos):
    with open(path, "rb") as f:
        f.seek(pos)
        return f.read(1)[0]


def last_marker_value(path):
    return last_put(path, MARKER, len(MARKER))


def unpack(b, i=0):
    """One msgpack value of the kinds the snapshot holds (nil, bool,
    integers, strings, arrays) at b[i:]: (value, next offset)."""
    c = b[i]
    if c <= 0x7F:
        return c, i + 1
    if c >= 0xE0:
        return c - 0x100, i + 1
    if c in (0xC0, 0xC2, 0xC3):
        return {0xC0: None, 0xC2: False, 0xC3: True}[c], i + 1
    ints = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
    if c in ints:
        n = ints[c]
        return int.from_bytes(b[i + 1:i + 1 + n], "big", signed=c >= 0xD0), i + 1 + n
    # An array or a string: its length in the byte (fix) or in 1, 2 or 4 after it.
    lens = {0xDC: 2, 0xDD: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}
    if 0x90 <= c <= 0x9F or 0xA0 <= c <= 0xBF:
        n, i = c & (15 if c <= 0x9F else 31), i + 1
    elif c in lens:
        n, i = int.from_bytes(b[i + 1:i + 1 + lens[c]], "big"), i + 1 + lens[c]
    else:
        raise AssertionError("msgpack byte %#x" % c)
    if c <= 0x9F or c in (0xDC, 0xDD):
        out = []
        for _ in range(n):
            v, i = unpack(b, i)
            out.append(v)
        return out, i
    return b[i:i + n].decode(), i + n


class TestCountersSnapshot(unittest.TestCase):

    def setUp(self):
        self.server = Server(extra_args=[CLOCK]).start()
        self.addCleanup(self.server.cleanup)
        self.w = World(self.server)

    def tearDown(self):
        if self.server.alive():
            self.assertEqual(self.server.stop(), 0, self.server.stderr_tail())

    def restart(self, *extra, kill=False, expect_from_records=True):
        if self.server.alive():
            if kill:
                self.server.kill()
            else:
                self.assertEqual(self.server.stop(), 0, self.server.stderr_tail())
        mark = os.path.getsize(self.server.log_path)
        self.server.extra_args = [CLOCK] + list(extra)
        self.server.start()
        with open(self.server.log_path, "rb") as f:
            f.seek(mark)
            started = f.read().decode("utf-8", "replace")
        self.assertNotIn("views snapshot differs", started)
        self.assertEqual('msg="records read"' in started, expect_from_records, started)
        w = self.w
        w.plat = self.server.client(w.admin_token)
        w.portal = self.server.client(w.portal.token)
        w.anon = self.server.client("")
        w.ag = {a: self.server.client(c.token) for a, c in w.ag.items()}
        return started

    def answers(self):
        """What the snapshot's counters show: the counted lines of /metrics,
        the statistics (task rows' first_at, the first submission) and the
        digest."""
        w = self.w
        text = w.anon.get("/metrics").body.decode()
        metrics = sorted(ln for ln in text.splitlines() if ln.startswith(COUNTED))
        stats = w.plat.get("/v1/stats")
        self.assertEqual(stats.status, 200, stats)
        digest = w.plat.get("/v1/admin/digest")
        self.assertEqual(digest.status, 200, digest)
        return {"metrics": metrics, "stats": stats.json, "digest": digest.json["digest"]}

    def clock(self, **body):
        r = self.w.plat.post("/v1/test/clock", body)
        self.assertEqual(r.status, 200, r)

    def licence(self, wid):
        req = self.w.submit(wid, good_form())
        v = self.w.view(req["id"])
        self.assertEqual(v["status"], "completed", v)
        return v["licence"]["number"]

    def approve_all(self, rid, steps=("intake", "review_b", "review_c", "final")):
        for step in steps:
            self.w.decide(rid, step, "approve")

    def test_counters_survive_restarts(self):
        w = self.w
        wx = w.workflow()
        pa, pb = "LA" + uniq("n").upper()[-5:], "LB" + uniq("n").upper()[-5:]
        la, lb = "lic-a-" + uniq("w").lower(), "lic-b-" + uniq("w").lower()
        w.publish(issue_workflow(la, pa + "-{yyyy}-{seq:3}"))
        w.publish(issue_workflow(lb, pb + "-{seq:4}"))
        ids = [w.submit(wx)["id"] for _ in range(6)]
        self.approve_all(ids[0])
        w.decide(ids[1], "intake", "reject", reason="no")
        r = w.portal.post("/v1/requests/%s/withdraw" % ids[2], {"reason": "moved"})
        self.assertEqual(r.status, 200, r)
        w.decide(ids[3], "intake", "approve")  # open, its reviews held by B and C
        self.assertEqual([self.licence(la) for _ in range(2)],
                         [pa + "-2030-001", pa + "-2030-002"])
        self.assertEqual(self.licence(lb), pb + "-0001")
        # The intake SLAs (2 working days) breach; a year later the counter
        # of 2031 starts.
        self.clock(advance="P3D")
        w.decide(ids[4], "intake", "approve")
        self.clock(now="2031-01-10T09:00:00+07:00")
        self.assertEqual(self.licence(la), pa + "-2031-001")
        before = self.answers()
        self.assertTrue(any("osse_sla_breaches" in ln and not ln.endswith(" 0")
                            for ln in before["metrics"]), before["metrics"])
        statuses = re.findall(r'osse_requests\{status="(\w+)"\}',
                              w.anon.get("/metrics").body.decode())
        # The snapshot itself, as the last batch left it: what /metrics
        # shows, the requests, the first submission and the licence counters.
        self.server.kill()
        val, _ = last_marker_value(wal_path(self.server.data_dir))
        snap, end = unpack(val, 8)
        self.assertEqual(end, len(val))
        self.assertEqual(snap[:2], [1, len(ids) + 4])
        self.assertEqual(snap[3:5], [1, 1893981600000], "2030-01-07T02:00:00Z")
        metric = {}
        for ln in before["metrics"]:
            m = re.match(r'(\w+)\{(?:status="(\w+)"|agency="([^"]+)",workflow="([^"]+)")\} (\d+)$',
                         ln)
            self.assertTrue(m, ln)
            metric[m.group(1), m.group(2) or (m.group(3), m.group(4))] = int(m.group(5))
        self.assertEqual(snap[5], [metric["osse_requests", st] for st in statuses])
        rows = {(a, wf): (o, b) for a, wf, o, b, began, first in snap[6]}
        self.assertEqual(rows, {k: (metric["osse_open_tasks", k], metric["osse_sla_breaches", k])
                                for n, k in metric if n == "osse_open_tasks"})
        self.assertTrue(all(began == 1 and first >= 1893981600000
                            for a, wf, o, b, began, first in snap[6]), snap[6])
        self.assertEqual(sorted(snap[7]), sorted([[la, 0, [[2030, 2], [2031, 1]]], [lb, 1, []]]))
        self.restart()
        self.assertEqual(self.answers(), before, "after a clean restart")
        self.restart(kill=True)
        self.assertEqual(self.answers(), before, "after a kill -9")
        # opn/ changes in the middle and at its end; the counters go on.
        self.approve_all(ids[3], ("review_b", "review_c", "final"))
        ids.append(w.submit(wx)["id"])
        self.assertEqual(self.licence(la), pa + "-2031-002")
        self.assertEqual(self.licence(lb), pb + "-0002")
        before = self.answers()
        self.restart(kill=True)
        self.assertEqual(self.answers(), before, "after a second kill -9")
        self.assertEqual(self.licence(lb), pb + "-0003")
        before = self.answers()
        self.restart("--rebuild-views", expect_from_records=False)
        self.assertEqual(self.answers(), before, "after --rebuild-views")
        self.restart()
        self.assertEqual(self.answers(), before, "after --rebuild-views and a restart")
        self.server.stop()
        digest, rec = replay_data(self.server.data_dir)
        self.assertIn(before["digest"], digest)
        ix = rec["indexes"]
        self.assertEqual((ix["missing"], ix["different"], ix["extra"]), (0, 0, 0), rec)

    def serve_fails(self):
        # --check-views: the start reads every record and checks the
        # snapshot (a start reads only the open requests' otherwise).
        p = subprocess.run([OSSE_BIN, "serve", "--data", self.server.data_dir, "--listen",
                            "127.0.0.1:0", CLOCK, "--check-views"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertNotIn(b"listening", p.stdout)
        return p.stderr.decode("utf-8", "replace")

    def tamper(self, delta):
        """Kills the server and adds delta to the number of requests in the
        last views/6 value of the write-ahead log."""
        self.server.kill()
        path = wal_path(self.server.data_dir)
        val, pos = last_marker_value(path)
        # be64(seq), then [1, requests, ...]: fixarray 8, version 1, and a
        # fixint while there are fewer than 127 requests.
        self.assertEqual(val[8:10], b"\x98\x01", val[:16])
        self.assertLess(val[10], 0x7F)
        wal_patch(path, [(pos[10], val[10] + delta)])
        return val[10]

    def test_tampered_snapshot_refuses_to_start(self):
        w = self.w
        wx = w.workflow()
        rid = w.submit(wx)["id"]
        w.submit(wx)
        w.decide(rid, "intake", "reject", reason="no")
        before = self.answers()
        # The same number written back: the start reads it as before.
        self.assertEqual(self.tamper(0), 2)
        self.restart()
        self.assertEqual(self.answers(), before, "after a rewrite to the same number")
        w.submit(wx)
        before = self.answers()
        self.assertEqual(self.tamper(1), 3)
        for _ in range(2):  # refused again at the next try: nothing was changed
            err = self.serve_fails()
            self.assertRegex(err, r'level=error msg="views snapshot differs" field=requests '
                             r'stored=4 rebuilt=3')
            self.assertIn("--rebuild-views", err)
            self.assertIn("counters snapshot", err)
        started = self.restart("--rebuild-views", expect_from_records=False)
        self.assertIn('msg="records written"', started)
        self.assertEqual(self.answers(), before, "after --rebuild-views")
        self.restart()
        self.assertEqual(self.answers(), before, "after --rebuild-views and a restart")
        # An open request's record moved to another seq under opn/: every
        # start refuses it, and says which.
        w.submit(wx)
        before = self.answers()
        self.server.kill()
        path = wal_path(self.server.data_dir)
        pos = last_put_key(path, b"opn/", 12)
        with open(path, "rb") as f:
            seq = 0
            for p in pos[4:]:
                f.seek(p)
                seq = seq << 8 | f.read(1)[0]
        wal_patch(path, [(pos[-1], (seq & 0xFF) ^ 0x40)])
        for extra in ([], ["--check-views"]):
            p = subprocess.run([OSSE_BIN, "serve", "--data", self.server.data_dir, "--listen",
                                "127.0.0.1:0", CLOCK] + extra, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=60)
            self.assertNotEqual(p.returncode, 0)
            self.assertRegex(p.stderr.decode("utf-8", "replace"),
                             r"the opn/ record at seq %d holds r-\w+, open and first at seq %d"
                             % (seq ^ 0x40, seq))
        # osse replay --data finds it at the wrong key: one missing, one extra.
        p = run_osse("replay", "--data", self.server.data_dir, check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertRegex(p.stdout.decode(),
                         r"records \d+ equal, 1 missing, 0 different, 1 extra")
        self.restart("--rebuild-views", expect_from_records=False)
        self.assertEqual(self.answers(), before, "after --rebuild-views")

    def test_replay_names_wrong_records_and_entries(self):
        """osse replay --data reads the stored records and index entries in
        one pass each and finds them by key: a changed value, an entry at a
        key no request gives (and the one it should be at missing), and a
        changed record are each counted and named by their request."""
        w = self.w
        wx = w.workflow()
        ids = [w.submit(wx)["id"] for _ in range(3)]
        self.approve_all(ids[0])  # its record moves to req/<id>
        ids.append(w.submit(wx)["id"])  # the last put of lst/ is its only one
        self.server.kill()
        clean = replay_data(self.server.data_dir)[1]
        self.assertEqual((clean["missing"], clean["different"], clean["extra"]), (0, 0, 0), clean)
        self.assertEqual(clean["indexes"]["extra"], 0, clean)

        def tampered(find, edit):
            d = tempfile.mkdtemp(dir=os.path.dirname(self.server.data_dir))
            self.addCleanup(shutil.rmtree, d, True)
            shutil.copytree(self.server.data_dir, d, dirs_exist_ok=True)
            path = wal_path(d)
            got = find(path)
            wal_patch(path, [edit(path, got)])
            p = run_osse("replay", "--data", d, check=False)
            self.assertEqual(p.returncode, 1, p.stderr)
            return got, p.stdout.decode()

        def count(line, out):
            m = re.search(r"^%s (\d+) equal, (\d+) missing, (\d+) different, (\d+) extra$"
                          % line, out, re.M)
            self.assertTrue(m, out)
            return tuple(map(int, m.groups()))

        ix_n, rec_n = clean["indexes"]["equal"], clean["equal"]
        # A list entry's value changed (its last byte).
        (val, pos), out = tampered(lambda p: last_put(p, b"lst/", 12),
                                   lambda _, g: (g[1][-1], g[0][-1] ^ 0x01))
        self.assertEqual(count("indexes", out), (ix_n - 1, 0, 1, 0), out)
        self.assertIn("indexes: the first wrong is %s (different)" % ids[-1], out)
        self.assertEqual(unpack(val)[0][0], ids[-1])
        self.assertEqual(count("records", out), (rec_n, 0, 0, 0), out)
        # The same entry at another seq: one missing, one extra.
        _, out = tampered(lambda p: last_put_key(p, b"lst/", 12),
                          lambda p, pos: (pos[-1], byte_at(p, pos[-1]) ^ 0x40))
        self.assertEqual(count("indexes", out), (ix_n - 1, 1, 0, 1), out)
        self.assertIn("indexes: the first wrong is %s (missing)" % ids[-1], out)
        # The ended request's record changed: different, and named.
        key = ("req/" + ids[0]).encode()
        _, out = tampered(lambda p: last_put(p, key, len(key)),
                          lambda _, g: (g[1][-1], g[0][-1] ^ 0x01))
        self.assertEqual(count("records", out), (rec_n - 1, 0, 1, 0), out)
        self.assertIn("records: the first different is %s's" % ids[0], out)
        self.assertEqual(count("indexes", out), (ix_n, 0, 0, 0), out)

    def migrated_from(self, older):
        """A folder of the older marker (every marker put in the write-ahead
        log renamed) is replayed and migrated once, then read from its
        records."""
        w = self.w
        wx = w.workflow()
        codes = [w.submit(wx)["tracking_code"] for _ in range(3)]
        before = self.answers()
        self.server.kill()
        path = wal_path(self.server.data_dir)
        with open(path, "rb") as f:
            b = f.read()
        edits = []
        for payload, pos in wal_records(b):
            for m in re.finditer(re.escape(MARKER), payload):
                edits.append((pos[m.start() + len(MARKER) - 1], ord(older)))
        self.assertGreater(len(edits), 3)
        wal_patch(path, edits)
        started = self.restart(expect_from_records=False)
        self.assertIn('msg="log replayed"', started)
        self.assertIn('msg="records written"', started)
        self.assertEqual(self.answers(), before, "after the migration")
        self.restart()
        self.assertEqual(self.answers(), before, "read from the records after the migration")
        for code in codes:
            self.assertEqual(w.anon.get("/v1/track/" + code).status, 200, code)
        self.assertEqual(self.server.stop(), 0)
        _, rec = replay_data(self.server.data_dir)
        ix = rec["indexes"]
        self.assertEqual((ix["missing"], ix["different"], ix["extra"]), (0, 0, 0), ix)

    def test_views_5_folder_is_migrated(self):
        self.migrated_from("5")

    def test_views_4_folder_is_migrated(self):
        self.migrated_from("4")

if __name__ == "__main__":
    main()
