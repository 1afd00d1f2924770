"""test_audit.py: the tamper-evident log from outside (SPEC §6, issue 4).

Everything osse claims is checked here with code that shares nothing with
it: the Merkle tree is recomputed in Python from /v1/log's leaf hashes, the
proofs are verified with the RFC 9162 algorithms, the checkpoint's Ed25519
signature with a small RFC 8032 verifier written below, and the C2SP note
and key id are rebuilt byte by byte. Then a workload is killed with SIGKILL
and `osse replay` of the data folder and of an `osse export` (checked by
`osse verify`) must give the live digest; a damaged export must fail.
"""

import base64
import hashlib
import os
import random
import subprocess
import tempfile
import threading
import time
import unittest

from osse_harness import OSSE_BIN, Server, World, good_form, log_events, main, run_osse

# --- Ed25519 verification (RFC 8032 §5.1.7), deliberately plain ------------

P = 2 ** 255 - 19
L = 2 ** 252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
I = pow(2, (P - 1) // 4, P)


def _xrecover(y, sign):
    xx = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P:
        x = x * I % P
    if (x * x - xx) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def _add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    A = (y1 - x1) * (y2 - x2) % P
    B = (y1 + x1) * (y2 + x2) % P
    C = 2 * t1 * t2 * D % P
    Dd = 2 * z1 * z2 % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def _mul(s, pt):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _add(q, pt)
        pt = _add(pt, pt)
        s >>= 1
    return q


def _decode_point(b):
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    x = _xrecover(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _eq(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


GY = 4 * pow(5, P - 2, P) % P
G = (_xrecover(GY, 0), GY, 1, _xrecover(GY, 0) * GY % P)


def ed25519_verify(pk, msg, sig):
    A = _decode_point(pk)
    R = _decode_point(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if A is None or R is None or s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + pk + msg).digest(), "little") % L
    return _eq(_mul(s, G), _add(R, _mul(h, A)))


# --- RFC 6962 / 9162 ---------------------------------------------------------

def node(a, b):
    return hashlib.sha256(b"\x01" + a + b).digest()


def mth(leaves):
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(m, n, proof, root1, root2):
    """RFC 9162 §2.1.4.2."""
    if m == n:
        return not proof and root1 == root2
    if not proof:
        return False
    if m & (m - 1) == 0:
        proof = [root1] + proof
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


def h(x):
    return bytes.fromhex(x)


run = run_osse


def workload(w, wid, n, stop=None, rng=None):
    rng = rng or random.Random()
    for _ in range(n):
        if stop is not None and stop.is_set():
            return
        try:
            req = w.submit(wid, good_form(rng))
            if rng.random() < 0.7:
                w.decide(req["id"], "intake", rng.choice(["approve", "approve", "reject"]),
                         agency=w.A)
        except Exception:
            if stop is None:
                raise
            return  # the server was killed under us


class TestAudit(unittest.TestCase):
    def setUp(self):
        self.srv = Server().start()

    def tearDown(self):
        if self.srv.alive():
            self.assertEqual(self.srv.stop(), 0, self.srv.stderr_tail())
        self.srv.cleanup()

    def test_checkpoint_proofs_and_key(self):
        w = World(self.srv)
        wid = w.workflow()
        workload(w, wid, 40, rng=random.Random(7))
        time.sleep(1.3)  # a head at least every second while events arrive
        evs = log_events(w.auditor)
        leaves = [h(e["leaf_hash"]) for e in evs]
        self.assertEqual([e["seq"] for e in evs], list(range(1, len(evs) + 1)))

        key = w.anon.get("/v1/log/public-key")
        self.assertEqual(key.status, 200, key)
        pk = base64.b64decode(key.json["public_key"])
        cp = w.anon.get("/v1/log/checkpoint")
        self.assertEqual(cp.status, 200, cp)
        c = cp.json
        self.assertEqual(set(c), {"origin", "size", "root", "signature", "key_id", "at"})
        self.assertEqual(c["size"], len(evs), "the head covers every durable event after 1 s")
        self.assertEqual(h(c["root"]), mth(leaves[:c["size"]]))
        # key id and verifier key: C2SP signed-note rules.
        kid = hashlib.sha256(c["origin"].encode() + b"\n\x01" + pk).digest()[:4]
        self.assertEqual(c["key_id"], kid.hex())
        self.assertEqual(key.json["key_id"], kid.hex())
        self.assertEqual(key.json["verifier_key"], "%s+%s+%s" % (
            c["origin"], kid.hex(), base64.b64encode(b"\x01" + pk).decode()))
        body = ("%s\n%d\n%s\n" % (c["origin"], c["size"],
                                  base64.b64encode(h(c["root"])).decode())).encode()
        sig = base64.b64decode(c["signature"])
        self.assertTrue(ed25519_verify(pk, body, sig), "checkpoint signature")
        self.assertFalse(ed25519_verify(pk, body.replace(b"\n%d\n" % c["size"],
                                                         b"\n%d\n" % (c["size"] + 1)), sig))
        # The same head as a C2SP tlog-checkpoint note.
        note = w.anon.get("/v1/log/checkpoint", headers={"Accept": "text/plain"})
        self.assertEqual(note.status, 200, note)
        self.assertTrue(note.headers["content-type"].startswith("text/plain"), note.headers)
        line = "\u2014 %s %s\n" % (c["origin"], base64.b64encode(kid + sig).decode())
        self.assertEqual(note.body, body + b"\n" + line.encode())

        n = c["size"]
        root = h(c["root"])
        # Inclusion of every event in the signed tree; and in smaller trees.
        for seq in range(1, n + 1):
            r = w.auditor.get("/v1/log/proof/inclusion?seq=%d&size=%d" % (seq, n))
            self.assertEqual(r.status, 200, r)
            p = r.json
            self.assertEqual((p["seq"], p["leaf_index"], p["tree_size"]), (seq, seq - 1, n))
            self.assertEqual(h(p["leaf_hash"]), leaves[seq - 1])
            self.assertTrue(verify_inclusion(seq - 1, n, leaves[seq - 1],
                                             [h(x) for x in p["hashes"]], root), (seq, p))
        rng = random.Random(3)
        for _ in range(60):
            size = rng.randint(1, n)
            seq = rng.randint(1, size)
            p = w.auditor.get("/v1/log/proof/inclusion?seq=%d&size=%d" % (seq, size)).json
            self.assertTrue(verify_inclusion(seq - 1, size, leaves[seq - 1],
                                             [h(x) for x in p["hashes"]], mth(leaves[:size])))
        # Consistency between many pairs, by anyone.
        pairs = [(a, b) for a in range(1, n + 1) for b in range(a, n + 1)]
        for a, b in rng.sample(pairs, min(len(pairs), 150)) + [(1, n), (n, n)]:
            r = w.anon.get("/v1/log/proof/consistency?from=%d&to=%d" % (a, b))
            self.assertEqual(r.status, 200, r)
            self.assertEqual((r.json["from"], r.json["to"]), (a, b))
            self.assertTrue(verify_consistency(a, b, [h(x) for x in r.json["hashes"]],
                                               mth(leaves[:a]), mth(leaves[:b])), (a, b, r.json))
        # Bad parameters: clear 422s, and the inclusion proof is not public.
        for q in ("seq=0&size=3", "seq=4&size=3", "seq=1&size=%d" % (n + 1000), "size=3",
                  "seq=x", "seq=1&what=2"):
            r = w.auditor.get("/v1/log/proof/inclusion?" + q)
            self.assertEqual(r.status, 422, (q, r))
            self.assertEqual(r.error_code, "invalid_request")
        for q in ("from=0&to=3", "from=4&to=3", "from=1", "to=3", "from=1&to=%d" % (n + 1000)):
            self.assertEqual(w.anon.get("/v1/log/proof/consistency?" + q).status, 422, q)
        self.assertEqual(w.anon.get("/v1/log/proof/inclusion?seq=1").status, 401)
        self.assertEqual(w.portal.get("/v1/log/proof/inclusion?seq=1").status, 403)

    def test_kill_replay_export_verify(self):
        w = World(self.srv)
        wid = w.workflow()
        workload(w, wid, 20, rng=random.Random(11))
        stop = threading.Event()
        threads = [threading.Thread(target=workload, args=(w, wid, 10000, stop,
                                                           random.Random(i)))
                   for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        self.srv.kill()
        stop.set()
        for t in threads:
            t.join()
        self.srv.start()
        plat = self.srv.client(self.srv.admin_token())
        # At start the log is signed whole (the tail of the killed run too).
        cp = plat.get("/v1/log/checkpoint").json
        live = plat.get("/v1/admin/digest").json
        self.assertEqual(cp["size"], live["size"])
        key = plat.get("/v1/log/public-key").json["verifier_key"]
        data = self.srv.data_dir

        out = run("replay", "--data", data).stdout.decode().strip().splitlines()
        self.assertEqual(out[-1], live["digest"])
        self.assertEqual(out[-2], "events %d" % live["size"])

        with tempfile.TemporaryDirectory() as tmp:
            exp = os.path.join(tmp, "log.bin")
            with open(exp, "wb") as f:
                subprocess.run([OSSE_BIN, "export", "--data", data], stdout=f, check=True,
                               timeout=300)
            v = run("verify", exp, "--key", key).stdout.decode()
            self.assertIn("events 1..%d" % live["size"], v)
            self.assertIn("root %s" % cp["root"], v)
            out = run("replay", exp, "--key", key).stdout.decode().strip().splitlines()
            self.assertEqual(out[-1], live["digest"])
            # The key may also be given as a file; a wrong key fails.
            kf = os.path.join(tmp, "key.txt")
            with open(kf, "w") as f:
                f.write(key + "\n")
            run("verify", exp, "--key", kf)
            other = base64.b64encode(bytes(32)).decode()
            self.assertNotEqual(run("verify", exp, "--key", other, check=False).returncode, 0)

            with open(exp, "rb") as f:
                blob = f.read()
            # A flipped byte in the middle of an event's bytes is named by seq.
            evs = log_events(plat)
            target = evs[len(evs) // 2]["seq"]
            pos = blob.find(h(evs[len(evs) // 2]["leaf_hash"])) + 32 + 10
            bad = bytearray(blob)
            bad[pos] ^= 0x40
            with open(exp, "wb") as f:
                f.write(bad)
            p = run("verify", exp, "--key", key, check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("seq %d" % target, p.stderr.decode())
            self.assertNotEqual(run("replay", exp, "--key", key, check=False).returncode, 0)
            # Truncated and extended files fail too.
            for damaged in (blob[:-1], blob[: len(blob) // 2], blob + b"\0"):
                with open(exp, "wb") as f:
                    f.write(damaged)
                p = run("verify", exp, "--key", key, check=False)
                self.assertNotEqual(p.returncode, 0, len(damaged))
                self.assertIn("FAILED at byte", p.stderr.decode())
            # A range verifies on its own but cannot rebuild the views.
            with open(exp, "wb") as f:
                subprocess.run([OSSE_BIN, "export", "--data", data, "--from", "5", "--to",
                                str(live["size"] - 3)], stdout=f, check=True, timeout=300)
            run("verify", exp, "--key", key)
            p = run("replay", exp, "--key", key, check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("from seq 1", p.stderr.decode())

    def test_replay_reports_the_first_problem_in_log_order(self):
        """A forger changes an event's bytes and its leaf hash together, so
        that the event no longer applies: verify names the head that covers
        it, replay names the event, which comes first in the log, although
        its reader thread has read and checked far beyond it (issue 13)."""
        w = World(self.srv)
        wid = w.workflow()
        workload(w, wid, 60, rng=random.Random(13))
        plat = self.srv.client(self.srv.admin_token())
        key = plat.get("/v1/log/public-key").json["verifier_key"]
        evs = log_events(plat)
        opened = [e for e in evs if e["type"] == "StepOpened" and "due_at" in e["data"]]
        self.assertTrue(opened)
        target = opened[len(opened) // 3]
        self.assertLess(target["seq"], evs[-1]["seq"])
        with tempfile.TemporaryDirectory() as tmp:
            exp = os.path.join(tmp, "log.bin")
            with open(exp, "wb") as f:
                subprocess.run([OSSE_BIN, "export", "--data", self.srv.data_dir], stdout=f,
                               check=True, timeout=300)
            with open(exp, "rb") as f:
                blob = bytearray(f.read())
            lh = h(target["leaf_hash"])
            at = blob.find(lh)
            self.assertGreater(at, 0)
            n = int.from_bytes(blob[at - 4:at], "big")
            ev = blob[at + 32:at + 32 + n]
            k = ev.find(b"\xa6due_at")
            self.assertGreater(k, 0)
            ev[k + 8] = ord("x")  # the first character of the time: not a time
            blob[at + 32:at + 32 + n] = ev
            blob[at:at + 32] = hashlib.sha256(b"\0" + bytes(ev)).digest()
            with open(exp, "wb") as f:
                f.write(blob)
            p = run("verify", exp, "--key", key, check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("head of size", p.stderr.decode())
            p = run("replay", exp, "--key", key, check=False)
            self.assertEqual(p.returncode, 1)
            err = p.stderr.decode()
            self.assertIn("FAILED at byte 0: event %d does not apply: bad due_at" % target["seq"],
                          err)
            self.assertNotIn("head of size", err)
            self.assertEqual(p.stdout, b"")  # no digest

    def test_clean_shutdown_signs_the_end(self):
        w = World(self.srv)
        wid = w.workflow()
        workload(w, wid, 5, rng=random.Random(5))
        size = w.plat.get("/v1/admin/digest").json["size"]
        self.assertEqual(self.srv.stop(), 0)
        stopped = time.time()
        time.sleep(0.05)
        self.srv.start()
        # The head served after the restart is the one signed at shutdown
        # (a start signs only when the log outgrew the last stored head).
        cp = self.srv.client().get("/v1/log/checkpoint").json
        self.assertEqual(cp["size"], size)
        at = time.mktime(time.strptime(cp["at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        self.assertLessEqual(at, stopped)


if __name__ == "__main__":
    main()
