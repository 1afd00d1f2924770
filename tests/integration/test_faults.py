"""test_faults.py: a log write or fsync that fails gives no 2xx and a clean
stop, and a restart recovers everything acknowledged (SPEC §11, issue 10).

`osse serve --fault-write N` / `--fault-fsync N` (tests only) make the Nth
synced write of the log since start fail as RocksDB reports an I/O error:
"write" before anything reaches RocksDB, "fsync" after the batch was handed
over unsynced (its bytes may be on disk after the restart, as after a real
failed fsync). For a few N of each kind, four client threads submit and
decide on one data folder, recording every 2xx; then:

- the server exits 1 by itself, not by a signal (no abort, no core), and its
  stderr has the logfmt lines of the failed write and of the stop;
- no answer at all went out after the failed write: no client saw an HTTP
  status other than 2xx (their connections were closed), and no `call` line
  with a status follows the failure in stderr;
- restarted without the fault: every acknowledged submission and decision is
  in its request's events, /v1/log is 1..n without a gap, a write fault left
  exactly the events durable before it (`stopped events=`), `osse export` +
  `osse verify` accept the log and `osse replay --data`'s digest is the live
  one.

The Nth write always falls inside the load, whatever the timing: each thread
waits for its answer before its next call, so one synced write holds at
most one call per thread, and the load makes more calls than 4 * N.

`osse serve --fault-alloc N` makes the Nth allocation through osse's
allocator, counted from the `listening` line, fail: one client submits, one
call at a time, until the process dies; it must die by SIGABRT with one
last line `msg="out of memory"`, after several 201s, and the restart must
have every acknowledged submission, verify and replay as above.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (OSSE_BIN, Server, World, good_form, log_events,  # noqa: E402
                          main, run_osse as run, uniq)

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
THREADS = 4
CALLS = 60  # per thread: 240 calls, more than 4 * the largest N below
ROUNDS = [("fsync", 3), ("write", 5), ("fsync", 17), ("write", 29), ("fsync", 52)]
ALLOC_N = 300  # about ten submissions: each makes some 28 allocations
ALLOC_CALLS = 1000
FIELD_RE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def logfmt(line):
    return {k: v[1:-1] if v.startswith('"') else v for k, v in FIELD_RE.findall(line)}


class Load(threading.Thread):
    """Submits, and approves the intake of what it submitted, until the
    server stops answering. Every 2xx is recorded; any other status is a
    failure of the test."""

    def __init__(self, srv, world, wid, idx):
        super().__init__(daemon=True)
        self.portal = srv.client(world.portal.token)
        self.agency = srv.client(world.ag[world.A].token)
        self.wid, self.idx = wid, idx
        self.subs = {}        # rid -> version of the 201
        self.decisions = []   # (rid, version of the 200)
        self.other = []       # answers that were not 2xx
        self.ended = None     # the exception that ended the thread

    def run(self):
        pending = []
        try:
            for i in range(CALLS):
                if pending and i % 2:
                    rid = pending.pop(0)
                    r = self.agency.post("/v1/tasks/%s/intake/decision" % rid,
                                         {"outcome": "approve"})
                    if r.status == 200:
                        self.decisions.append((rid, r.json["version"]))
                    else:
                        self.other.append(r)
                    continue
                r = self.portal.post("/v1/requests", {"workflow": self.wid, "form": good_form()},
                                     headers={"Idempotency-Key": uniq("k%d" % self.idx)})
                if r.status == 201:
                    self.subs[r.json["id"]] = r.json["version"]
                    pending.append(r.json["id"])
                else:
                    self.other.append(r)
        except OSError as e:  # closed, reset or refused: the server stopped
            self.ended = e
        except Exception as e:  # noqa: BLE001 - http.client's RemoteDisconnected and kin
            self.ended = e


class TestFaults(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(extra_args=[CLOCK]).start()
        cls.world = World(cls.srv)
        cls.wid = cls.world.workflow()
        cls.acked_subs, cls.acked_decisions = {}, []
        assert cls.srv.stop() == 0

    @classmethod
    def tearDownClass(cls):
        cls.srv.cleanup()

    def stderr_since(self, mark):
        with open(self.srv.log_path, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace").splitlines()

    def one_round(self, kind, n):
        srv = self.srv
        mark = os.path.getsize(srv.log_path)
        srv.extra_args = [CLOCK, "--fault-" + kind, str(n)]
        srv.start()
        loads = [Load(srv, self.world, self.wid, i) for i in range(THREADS)]
        for t in loads:
            t.start()
        for t in loads:
            t.join(120)
            self.assertFalse(t.is_alive(), "a client thread still runs")
        try:
            rc = srv.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.fail("osse did not stop by itself after the failed %s %d:\n%s"
                      % (kind, n, srv.stderr_tail()))
        srv._close_pipe()
        lines = self.stderr_since(mark)
        text = "\n".join(lines)
        # A clean stop: exit 1, not a signal (SIGABRT would be -6).
        self.assertEqual(rc, 1, text)
        fields = [logfmt(line) for line in lines]
        failed = [i for i, f in enumerate(fields) if f.get("msg") == "rocksdb write failed"]
        self.assertEqual(len(failed), 1, text)
        f = fields[failed[0]]
        self.assertEqual((f.get("level"), f.get("fault"), f.get("write")), ("error", kind, str(n)),
                         text)
        self.assertTrue(any(x.get("msg") == "log write failed: stopping" for x in fields), text)
        self.assertTrue(any(x.get("msg") == "stopping" and x.get("reason") == "log_write_failed"
                            for x in fields), text)
        self.assertEqual(fields[-1].get("msg"), "stopped", text)
        self.assertEqual(fields[-1].get("exit"), "1", text)
        durable = int(fields[-1]["events"])
        # Nothing was answered after the failed write. The engine's line is
        # the loop thread's, in order with the `call` lines (the writer
        # thread's own line may come before answers of the batch before).
        stop = [i for i, x in enumerate(fields) if x.get("msg") == "log write failed: stopping"]
        self.assertEqual(len(stop), 1, text)
        late = [x for x in fields[stop[0]:] if x.get("msg") == "call"]
        self.assertEqual(late, [], text)
        for t in loads:
            self.assertEqual(t.other, [], "answers other than 2xx: %s" % t.other[:3])
            self.assertIsNotNone(t.ended, "a thread made all its calls: the fault came late")
        answered = sum(len(t.subs) + len(t.decisions) for t in loads)
        calls = [x for x in fields[:stop[0]] if x.get("msg") == "call"
                 and x.get("method") == "POST"]
        self.assertLessEqual(answered, len(calls), text)
        for t in loads:
            self.acked_subs.update(t.subs)
            self.acked_decisions += t.decisions

        self.recovered(kind, durable)

    def recovered(self, kind, durable):
        """Restarted without the fault, everything acknowledged is there,
        the log verifies and replays to the live views."""
        srv = self.srv
        srv.extra_args = [CLOCK]
        srv.start()
        plat = srv.client(srv.admin_token())
        evs = log_events(plat)
        seqs = [e["seq"] for e in evs]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        if kind == "write":
            # Nothing of the failed write reached RocksDB. (The restart may
            # have written since: its test clock's position is a side
            # record, its signed head one too.)
            self.assertEqual(len([e for e in evs if e["seq"] <= durable]), durable)
            self.assertEqual(len(evs), durable, "a failed write left events behind")
        else:
            self.assertGreaterEqual(len(evs), durable)
        reqs = {}
        for e in evs:
            if e["stream"].startswith("request/"):
                reqs.setdefault(e["stream"][len("request/"):], []).append(e)
        for rid, v in self.acked_subs.items():
            lst = reqs.get(rid, [])
            self.assertTrue(lst, "acknowledged request %s is not in the log" % rid)
            self.assertEqual(lst[0]["type"], "RequestSubmitted")
            self.assertGreaterEqual(len(lst), v, rid)
            r = plat.get("/v1/requests/" + rid)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["id"], rid)
        for rid, v in self.acked_decisions:
            lst = reqs.get(rid, [])
            dec = [e for e in lst if e["type"] == "TaskDecided"
                   and e["data"].get("step") == "intake"]
            self.assertTrue(dec and dec[0]["version"] <= v,
                            "acknowledged decision on %s is not in the log" % rid)
            view = plat.get("/v1/requests/" + rid).json
            self.assertEqual({s["name"]: s["state"] for s in view["steps"]}["intake"],
                             "approved", rid)

        # The log verifies and replays to the live views.
        live = plat.get("/v1/admin/digest").json
        key = plat.get("/v1/log/public-key").json["verifier_key"]
        out = run("replay", "--data", srv.data_dir).stdout.decode().strip().splitlines()
        self.assertEqual(out[-1], live["digest"])
        with tempfile.TemporaryDirectory() as tmp:
            exp = os.path.join(tmp, "log.bin")
            with open(exp, "wb") as fh:
                subprocess.run([OSSE_BIN, "export", "--data", srv.data_dir], stdout=fh,
                               check=True, timeout=300)
            v = run("verify", exp, "--key", key).stdout.decode()
            self.assertIn("events 1..%d" % live["size"], v)
        self.assertEqual(srv.stop(), 0, srv.stderr_tail())

    def test_alloc_fault(self):
        """--fault-alloc N: the Nth allocation since the listening line
        dies (the allocator never returns NULL, so no half-applied event is
        written): one line naming out of memory, SIGABRT; restarted without
        it, every acknowledged submission is there."""
        srv = self.srv
        mark = os.path.getsize(srv.log_path)
        srv.extra_args = [CLOCK, "--fault-alloc", str(ALLOC_N)]
        srv.start()
        portal = srv.client(self.world.portal.token)
        subs, died = {}, None
        # Each call waits for its answer, and each allocates: the Nth falls
        # inside the loop whatever the timing.
        for _ in range(ALLOC_CALLS):
            try:
                r = portal.post("/v1/requests", {"workflow": self.wid, "form": good_form()},
                                headers={"Idempotency-Key": uniq("ka")})
            except Exception as e:  # noqa: BLE001 - the process died mid-call
                died = e
                break
            self.assertEqual(r.status, 201, r)
            subs[r.json["id"]] = r.json["version"]
        self.assertIsNotNone(died, "%d calls and osse still runs" % ALLOC_CALLS)
        try:
            rc = srv.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.fail("osse did not die after the failed allocation:\n" + srv.stderr_tail())
        srv._close_pipe()
        lines = self.stderr_since(mark)
        text = "\n".join(lines)
        self.assertEqual(rc, -signal.SIGABRT, text)
        self.assertGreaterEqual(len(subs), 3, "died before several answers: " + text)
        fields = [logfmt(line) for line in lines]
        oom = [i for i, f in enumerate(fields) if f.get("msg") == "out of memory"]
        self.assertEqual(len(oom), 1, text)
        self.assertEqual(oom[0], len(lines) - 1, "lines after the death: " + text)
        self.assertEqual(fields[oom[0]].get("level"), "error", text)
        self.assertTrue(fields[oom[0]].get("bytes", "").isdigit(), text)
        started = [f for f in fields if f.get("msg") == "listening"]
        self.acked_subs.update(subs)
        self.recovered("alloc", int(started[-1]["events"]))

    def test_rounds(self):
        for kind, n in ROUNDS:
            with self.subTest(kind=kind, n=n):
                self.one_round(kind, n)

    def test_flag_checked(self):
        for flag in ("--fault-fsync", "--fault-alloc"):
            for bad in ("0", "-1", "x", ""):
                p = run("serve", "--data", self.srv.data_dir, flag, bad, check=False)
                self.assertNotEqual(p.returncode, 0, bad)
                self.assertEqual(p.returncode, 2, p.stderr)


if __name__ == "__main__":
    main()
