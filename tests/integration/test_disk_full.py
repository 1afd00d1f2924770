"""A nearly full disk (SPEC §11, issue 10).

osse's data folder lives on a small tmpfs of its own, with a free-space
reserve the test can cross (--min-free-bytes). A ballast file takes the
filesystem below the reserve: submissions must answer 503
insufficient_storage with Retry-After and write nothing, reads must go on,
the server must stay up (main's build died with SIGABRT inside RocksDB on a
full disk), a restart below the reserve must start and serve reads, and once
the ballast is gone writes must resume by themselves, with no restart.
Everything acknowledged before is still there at the end. And when another
process takes the last bytes between the sample and a write, RocksDB's
write fails with ENOSPC: a clean stop with exit 1, never SIGABRT.

Mounting needs root (CI runs the tests as root); without it the test is
skipped and says why.
"""

import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import osse_harness as h  # noqa: E402

MiB = 1 << 20
FS_SIZE = 48 * MiB
RESERVE = 16 * MiB
# The ballast leaves this much free: well below the reserve, yet room for
# what RocksDB writes by itself (a restart's WAL flush and new MANIFEST).
LEFT_FREE = 8 * MiB


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def poll(fn, timeout=15.0, every=0.2):
    """Calls fn until it returns a true value, at most timeout seconds."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(every)


class HeldRegistry:
    """A linkage registry whose answers ({"alive": true}) wait until
    `release` is set; counts the calls."""

    def __init__(self):
        self.release = threading.Event()
        self.calls = 0
        self.lock = threading.Lock()
        reg = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with reg.lock:
                    reg.calls += 1
                reg.release.wait(20)
                body = b'{"alive":true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/lookup" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return self.calls

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class DiskFullTest(unittest.TestCase):
    def setUp(self):
        self.mnt = tempfile.mkdtemp(prefix="osse-it-fs-")
        self.mounted = False
        self.server = None
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % FS_SIZE, "tmpfs", self.mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            os.rmdir(self.mnt)
            self.skipTest("cannot mount a tmpfs (needs root): %s" %
                          p.stdout.decode(errors="replace").strip())
        self.mounted = True
        self.ballast = os.path.join(self.mnt, "ballast")
        self.server = h.Server(data_dir=os.path.join(self.mnt, "data"),
                               extra_args=["--min-free-bytes", str(RESERVE),
                                           "--hook-retry-base-ms", "200"])
        # The server's stderr stays off the small filesystem.
        fd, self.server.log_path = tempfile.mkstemp(prefix="osse-it-diskfull-", suffix=".stderr")
        os.close(fd)

    def tearDown(self):
        if self.server is not None:
            self.server.kill()
            if not os.environ.get("OSSE_KEEP"):
                try:
                    os.unlink(self.server.log_path)
                except OSError:
                    pass
        if self.mounted:
            if subprocess.run(["umount", self.mnt]).returncode != 0:
                subprocess.run(["umount", "-l", self.mnt])
            shutil.rmtree(self.mnt, ignore_errors=True)

    # ---- helpers

    def fill(self):
        """Writes ballast until LEFT_FREE bytes are left."""
        chunk = b"\0" * MiB
        with open(self.ballast, "ab") as f:
            while free_bytes(self.mnt) > LEFT_FREE + MiB:
                f.write(chunk)
                f.flush()
            f.write(b"\0" * max(0, free_bytes(self.mnt) - LEFT_FREE))
            os.fsync(f.fileno())
        self.assertLess(free_bytes(self.mnt), RESERVE)

    def try_submit(self, w, wid, **kw):
        return w.portal.post("/v1/requests", {"workflow": wid, "form": h.good_form()}, **kw)

    def assertInsufficient(self, r):
        h.assert_error(self, r, 503, "insufficient_storage")
        ra = r.headers.get("retry-after")
        self.assertIsNotNone(ra, "503 without Retry-After: %r" % r)
        self.assertTrue(ra.isdigit() and int(ra) > 0, ra)

    def assertAlive(self):
        self.assertTrue(self.server.alive(),
                        "osse died on a full disk:\n" + self.server.stderr_tail(60))

    def refused_until_low(self, w, wid, acked):
        """Submits until the server notices the disk (it samples before each
        write and once a second); what it still accepts is acknowledged."""
        last = {}

        def refused():
            r = self.try_submit(w, wid)
            if r.status == 201:
                acked.append(r.json["id"])
                return False
            last["r"] = r
            return True

        self.assertTrue(poll(refused), "submissions were never refused; stderr:\n" +
                        self.server.stderr_tail())
        self.assertInsufficient(last["r"])

    def check_reads(self, w, wid, acked):
        for rid in acked:
            v = w.view(rid)
            self.assertEqual(v["workflow"], wid)
        r = w.plat.get("/v1/requests?workflow=%s&limit=500" % wid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(x["id"] for x in r.json["requests"]), sorted(acked))
        self.assertEqual(w.plat.get("/healthz").status, 200)
        self.assertEqual(w.plat.get("/v1/log/checkpoint").status, 200)
        self.assertEqual(w.ag[w.A].get("/v1/agencies/%s/tasks" % w.A).status, 200)
        m = w.plat.get("/metrics")
        self.assertEqual(m.status, 200)
        self.assertIn(b"osse_disk_low 1", m.body)

    def restart(self, w):
        """A clean stop and a start; the world's clients follow the new port."""
        self.assertEqual(self.server.stop(), 0, self.server.stderr_tail(60))
        self.start_again(w)

    def start_again(self, w):
        self.server.start()
        for c in [w.plat, w.portal, w.portal2, w.auditor, w.payment, w.anon, *w.ag.values()]:
            c.port = self.server.port

    # ---- the test

    def test_full_disk_refuses_writes_serves_reads_and_recovers(self):
        self.server.start()
        w = h.World(self.server)
        wid = w.workflow()
        acked = [w.submit(wid)["id"] for _ in range(5)]
        kept_body = {"workflow": wid, "form": h.good_form()}
        kept = w.portal.post("/v1/requests", kept_body, headers={"Idempotency-Key": "k1"})
        self.assertEqual(kept.status, 201, kept)
        acked.append(kept.json["id"])
        rid = acked[0]

        self.fill()
        self.refused_until_low(w, wid, acked)
        self.assertAlive()

        # Every kind of write is refused, and none reaches the log.
        size = w.log_size()
        self.assertInsufficient(self.try_submit(w, wid))
        self.assertInsufficient(w.plat.put("/v1/agencies/" + w.A, {"name": "renamed"}))
        self.assertInsufficient(w.ag[w.A].post("/v1/tasks/%s/intake/decision" % rid,
                                               {"outcome": "approve"}))
        self.assertInsufficient(w.plat.post("/v1/principals", {"role": "portal"}))
        # A remembered answer writes nothing: it is still given.
        again = w.portal.post("/v1/requests", kept_body, headers={"Idempotency-Key": "k1"})
        self.assertEqual(again.status, 201, again)
        self.assertEqual(again.json["id"], kept.json["id"])
        self.assertEqual(again.headers.get("idempotent-replayed"), "true")
        time.sleep(1.5)  # past an idle sample and a head-signing period
        self.assertEqual(w.log_size(), size)
        self.check_reads(w, wid, acked)
        self.assertAlive()

        # A restart below the reserve starts, serves reads and refuses writes.
        self.restart(w)
        self.assertAlive()
        self.assertLess(free_bytes(self.mnt), RESERVE)
        self.check_reads(w, wid, acked)
        self.assertInsufficient(self.try_submit(w, wid))
        self.assertEqual(w.log_size(), size)

        # With nothing at all left (another process took the last bytes) the
        # log cannot be opened for writing: the start says so and exits 1,
        # where RocksDB's own open aborted; with the bytes back it starts.
        self.assertEqual(self.server.stop(), 0, self.server.stderr_tail(60))
        last = os.path.join(self.mnt, "last-bytes")
        # Unbuffered (fill_to_zero): a buffered file's close would raise
        # ENOSPC again for what a short write left in its buffer, whenever
        # the space left is not a multiple of the writes.
        self.fill_to_zero(last)
        p = subprocess.run([h.OSSE_BIN, "serve", "--data", self.server.data_dir, "--listen",
                            "127.0.0.1:0", "--min-free-bytes", str(RESERVE)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr.decode(errors="replace"))
        self.assertIn(b"is full", p.stderr)
        os.unlink(last)
        self.start_again(w)
        self.check_reads(w, wid, acked)

        # Space returns: writes resume by themselves, no restart.
        os.unlink(self.ballast)
        started = time.time()
        got = {}

        def accepted():
            r = self.try_submit(w, wid)
            if r.status == 201:
                got["id"] = r.json["id"]
                return True
            self.assertInsufficient(r)
            return False

        self.assertTrue(poll(accepted, timeout=10), "writes did not resume within 10 s")
        self.assertLess(time.time() - started, 10)
        acked.append(got["id"])
        w.decide(rid, "intake", "approve")
        acked.append(w.submit(wid)["id"])
        self.assertEqual(w.plat.put("/v1/agencies/" + w.A, {"name": "renamed"}).status, 200)
        self.assertIn(b"osse_disk_low 0", w.plat.get("/metrics").body)

        # Everything acknowledged is there, also after a restart.
        self.restart(w)
        r = w.plat.get("/v1/requests?workflow=%s&limit=500" % wid)
        self.assertEqual(sorted(x["id"] for x in r.json["requests"]), sorted(acked))
        self.assertEqual(h.step_of(w.view(rid), "intake")["state"], "approved")
        self.assertEqual(self.server.stop(), 0, self.server.stderr_tail(60))

    def test_deadlines_lookups_and_delivery_outcomes_wait_while_low(self):
        """The engine's own writes wait too: a deadline that falls due, a
        webhook delivered and a registry's answer that arrives while the disk
        is low are recorded once space returns, not before and never lost."""
        rec = h.FailingReceiver()
        self.addCleanup(rec.close)
        reg = HeldRegistry()
        self.addCleanup(reg.close)
        self.server.start()
        w = h.World(self.server)
        r = w.plat.put("/v1/agencies/" + w.A, {"name": "Agency A", "webhook_url": rec.url})
        self.assertEqual(r.status, 200, r)
        wid = h.uniq("wf")
        w.publish({"id": wid, "title": "A short SLA", "form": h.FORM_FIELDS,
                   "steps": {"t": {"kind": "task", "agency": w.A, "sla": "PT6S"}}})
        t0 = time.time()
        rid = w.submit(wid)["id"]
        due = h.step_of(w.view(rid), "t")["due_at"]
        self.assertIsNotNone(due)
        r = w.plat.put("/v1/agencies/" + w.C, {"name": "Registry", "lookup_url": reg.url})
        self.assertEqual(r.status, 200, r)
        lid = h.uniq("wf")
        w.publish({"id": lid, "title": "A lookup", "form": h.FORM_FIELDS,
                   "steps": {"identity": {"kind": "linkage", "agency": w.C, "timeout": "PT30S",
                                          "input": {"citizen_id": "form.applicant_id"}},
                             "t": {"kind": "task", "agency": w.B, "after": ["identity"]}}})
        lrid = w.submit(lid)["id"]
        self.assertTrue(poll(lambda: reg.count() == 1), "the lookup was not called")

        self.fill()
        self.refused_until_low(w, wid, [])
        size = w.log_size()
        rec.status = 200  # the next retry of the StepOpened webhook succeeds
        failed = rec.count()  # after the switch: any attempt counted later got 200
        self.assertTrue(poll(lambda: rec.count() > failed, timeout=10), "no delivery while low")
        reg.release.set()  # the registry answers while the disk is low
        time.sleep(0.5)
        # Past the warning (80 %) and the breach of the 6 s SLA.
        time.sleep(max(0.0, t0 + 7.0 - time.time()))
        types = [e["type"] for e in w.plat.get("/v1/requests/%s/events" % rid).json["events"]]
        self.assertNotIn("SlaWarned", types)
        self.assertNotIn("SlaBreached", types)
        self.assertNotIn("NotificationDelivered", types)
        ltypes = [e["type"] for e in w.plat.get("/v1/requests/%s/events" % lrid).json["events"]]
        self.assertNotIn("LinkageCompleted", ltypes)
        self.assertEqual(h.step_of(w.view(lrid), "identity")["state"], "open")
        self.assertEqual(w.log_size(), size)
        self.assertAlive()

        os.unlink(self.ballast)

        def recorded():
            evs = w.plat.get("/v1/requests/%s/events" % rid).json["events"]
            t = [e["type"] for e in evs]
            return {"SlaWarned", "SlaBreached", "NotificationDelivered"} <= set(t) and t

        types = poll(recorded, timeout=10)
        self.assertTrue(types, "the deadlines and the delivery outcome were not recorded")
        self.assertEqual(types.count("SlaBreached"), 1, types)
        self.assertEqual(h.step_of(w.view(rid), "t")["sla"], "breached")
        # The answer that came while low was dropped; the lookup is made again.
        self.assertTrue(poll(lambda: h.step_of(w.view(lrid), "identity")["state"] == "done"),
                        "the lookup was not recorded after space returned")
        self.assertEqual(reg.count(), 2)
        self.assertEqual(h.step_of(w.view(lrid), "t")["state"], "open")
        self.assertEqual(self.server.stop(), 0, self.server.stderr_tail(60))

    def test_disk_taken_to_zero_under_a_write_stops_cleanly(self):
        """Another process takes the disk between the free-space sample and
        the write: RocksDB's write fails with ENOSPC. Debian's librocksdb
        used to abort there (SIGABRT, an assertion in its WritableFileWriter
        on the second failed line of its own LOG file). Now: no 2xx for that
        submission, a clean stop with exit 1, a restart while still full
        refused with exit 1, and after space returns everything
        acknowledged is there."""
        # A tiny reserve, so that the sample before the write lets it go.
        self.server.extra_args = ["--min-free-bytes", "4096",
                                  "--test-clock=2030-01-07T09:00:00+07:00"]
        self.server.start()
        w = h.World(self.server)
        wid = w.workflow()
        acked = [w.submit(wid)["id"] for _ in range(5)]
        w.decide(acked[0], "intake", "approve")
        mark = os.path.getsize(self.server.log_path)

        # The ballast takes everything (written until ENOSPC), then gives
        # back 32 KiB: above the reserve, so the sample lets the next write
        # go, and less than that write needs. (A write smaller than a page
        # may land in the log's last page and succeed even at 0 bytes free;
        # and at 0 the idle sample may say "low" first and answer 503.)
        self.fill_to_zero(self.ballast)
        os.truncate(self.ballast, os.path.getsize(self.ballast) - 32 * 1024)
        self.assertGreater(free_bytes(self.mnt), 4096)
        big = h.good_form(business_name="x" * (256 * 1024))
        try:
            r = w.portal.post("/v1/requests", {"workflow": wid, "form": big})
        except Exception as e:  # noqa: BLE001 - closed by the clean stop: no answer
            r = e
        if isinstance(r, h.Resp):
            self.assertGreaterEqual(r.status, 500, r)
            self.assertIsNotNone(r.error_code(), r)
        try:
            rc = self.server.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.fail("osse did not stop after the failed write:\n" + self.server.stderr_tail())
        self.server._close_pipe()
        with open(self.server.log_path, "rb") as f:
            f.seek(mark)
            text = f.read().decode("utf-8", "replace")
        # A clean stop, not SIGABRT (-6).
        self.assertEqual(rc, 1, text)
        self.assertNotIn("Assertion", text)
        failed = [ln for ln in text.splitlines() if 'msg="rocksdb write failed"' in ln]
        self.assertEqual(len(failed), 1, text)
        self.assertIn("No space left on device", failed[0])
        self.assertIn("exit=1", text.splitlines()[-1])
        self.assertIn("msg=stopped", text.splitlines()[-1])

        # Still full (RocksDB's close gave back its WAL's preallocation; the
        # other process takes it): the start refuses, exit 1, no abort.
        self.fill_to_zero(os.path.join(self.mnt, "ballast2"))
        p = subprocess.run([h.OSSE_BIN, "serve", "--data", self.server.data_dir, "--listen",
                            "127.0.0.1:0", "--min-free-bytes", "4096"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr.decode(errors="replace"))
        self.assertIn(b"is full", p.stderr)

        # Space back: everything acknowledged is there, and writes go on.
        os.unlink(self.ballast)
        os.unlink(os.path.join(self.mnt, "ballast2"))
        self.start_again(w)
        for rid in acked:
            self.assertEqual(w.view(rid)["workflow"], wid)
        self.assertEqual(h.step_of(w.view(acked[0]), "intake")["state"], "approved")
        seqs = [e["seq"] for e in h.log_events(w.plat)]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        acked.append(w.submit(wid)["id"])
        r = w.plat.get("/v1/requests?workflow=%s&limit=500" % wid)
        self.assertTrue(set(acked) <= {x["id"] for x in r.json["requests"]}, r)
        self.assertEqual(self.server.stop(), 0, self.server.stderr_tail(60))

    def fill_to_zero(self, path):
        """Writes path until the filesystem says ENOSPC: 0 bytes free."""
        with open(path, "ab", buffering=0) as f:
            for size in (MiB, 4096, 1):
                try:
                    while True:
                        f.write(b"\0" * size)
                except OSError:
                    pass
        self.assertEqual(free_bytes(self.mnt), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
