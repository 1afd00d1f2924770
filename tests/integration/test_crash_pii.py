"""test_crash_pii.py: SIGKILL during file uploads and during erasures (SPEC
§4 POST/GET /v1/files, §8 "Erasure", §11).

Uploads (TestUploadsUnderKill), several rounds on one data folder: client
threads (each its own portal, and one the platform) upload files of random
sizes (1 byte to 1.5 MiB, random bytes) as fast as they can, recording the
sha256 of what they sent for every 201 (whose own sha256 and size must be
those of the bytes sent); at a random moment the server gets SIGKILL and
is started again on the same data (the kill: after a random number of
201s and a random while more). Then, for every file acknowledged in any
round so far: its uploader GETs it, 200, the bytes' sha256 is the one sent
and the ETag says so too. Unacknowledged uploads may or may not be there,
but whatever is there is whole: <data>/files/tmp is empty, no
<data>/keys/*.tmp is left (keystore.h), and the file ids in <data>/files
and the f- ids of the key store's segments are the same set (a key or
bytes without a durable record are removed at start, engine.c key_one and
files.c orphan; a record never names bytes or a key that are not durable,
files.c), each served whole (200, ETag = sha256 of the bytes) to one of
the uploaders.

Erasures (TestErasuresUnderKill), rounds on one data folder: each round
makes M ended requests (half withdrawn by their portal, half rejected by
their agency), each with a pii form value and a pii file field, and reads
every request's and card file's wrapped key (72 bytes) from <data>/keys;
then threads send DELETE /v1/requests/{id}/personal-data for all of them
(each once), while another thread keeps uploading (key store appends beside
its rewrites), and the server gets SIGKILL after a random number of 200s
(and, half the rounds, a first start too). After the restart each request
is either

- complete: exactly one PersonalDataErased, the platform's view reads
  "[erased]" (and has erased_at), neither wrapped key is in the segments nor
  in any file under the data folder, and its card answers 410; or
- not started: no PersonalDataErased, the platform reads the plaintext, both
  wrapped keys are in the segments as they were, and the card answers 200
  with its bytes;

never half of each; every request that got a 200 is complete, and the
uploads beside are checked as above. Then the ones not started are
erased on the restarted server (200, complete; the complete ones answer 409
already_erased), and a clean stop and start changes nothing.

Every start has the same fixed test clock; the kill moment is random, no
assertion depends on it (anything asynchronous is polled with a bound).
The seed (printed; OSSE_CRASH_PII_SEED re-runs it) fixes the sizes, the
bytes and the kill thresholds; the moment itself is the machine's.
OSSE_CRASH_PII_ROUNDS (4, for each test) and OSSE_CRASH_PII_ERASURES (M,
40 per round) set the sizes. A sanitizer build (ASan) uploads files of
half the size.
"""

import hashlib
import os
import random
import subprocess
import sys
import threading
import time
import traceback
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (Client, files_holding, main, OSSE_BIN, sanitized, Server,  # noqa: E402
                          uniq, World, wrapped_keys)

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
MIB = 1 << 20
SEED = int(os.environ.get("OSSE_CRASH_PII_SEED") or int(time.time() * 1000))
ROUNDS = int(os.environ.get("OSSE_CRASH_PII_ROUNDS", "4"))
ERASURES = int(os.environ.get("OSSE_CRASH_PII_ERASURES", "40"))


SLOW = 4 if sanitized() else 1
MAX_UPLOAD = int(1.5 * MIB) // (2 if SLOW > 1 else 1)


def say(*a):
    print(*a, file=sys.stderr, flush=True)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def stored_files(data):
    d = os.path.join(data, "files")
    return {n for n in os.listdir(d) if n != "tmp"}


def tmp_files(data):
    return os.listdir(os.path.join(data, "files", "tmp"))


def random_bytes(rng):
    x = rng.random()
    if x < 0.25:
        n = rng.randint(1, 64)
    elif x < 0.6:
        n = rng.randint(65, 64 * 1024 + 1)  # around one sealed chunk
    else:
        n = rng.randint(64 * 1024, MAX_UPLOAD)
    return rng.randbytes(n)


class Uploads:
    """Upload threads and what the server acknowledged to them."""

    def __init__(self, port, tokens, rng, small=False):
        self.port = port
        self.tokens = tokens
        self.rng = rng
        self.small = small
        self.lock = threading.Lock()
        self.killed = threading.Event()
        self.acked = {}        # file id -> (token, sha256, size)
        self.unexpected = []
        self.threads = []

    def start(self, per_token=1):
        for tok in self.tokens:
            for _ in range(per_token):
                t = threading.Thread(target=self.run, args=(tok, self.rng.random()), daemon=True)
                self.threads.append(t)
        for t in self.threads:
            t.start()

    def count(self):
        with self.lock:
            return len(self.acked)

    def run(self, token, seed):
        rng = random.Random(seed)
        c = Client(self.port, token, timeout=30)
        try:
            while not self.killed.is_set():
                data = rng.randbytes(rng.randint(1, 4096)) if self.small else random_bytes(rng)
                h = sha(data)
                r = c.post("/v1/files", raw=data, content_type="application/octet-stream",
                           headers={"Osse-Filename": "f%d.bin" % len(data)})
                if r.status == 201 and r.json and r.json.get("sha256") == h and \
                        r.json.get("size") == len(data):
                    with self.lock:
                        self.acked[r.json["id"]] = (token, h, len(data))
                elif not self.killed.is_set():
                    with self.lock:
                        self.unexpected.append(("upload", len(data), r.status, r.body[:300]))
                    return
        except Exception as ex:  # noqa: BLE001 - the kill cuts connections
            if not self.killed.is_set():
                with self.lock:
                    self.unexpected.append("upload failed before the kill: %r\n%s"
                                           % (ex, traceback.format_exc()))
        finally:
            c.close()

    def join(self, tc):
        for t in self.threads:
            t.join(60)
            tc.assertFalse(t.is_alive(), "an upload thread hangs after the kill")


def check_files(server, acked, tokens, when, others=()):
    """After a start: every acknowledged file whole for its uploader; no
    leftover in files/tmp; the stored files and the f- keys the same set,
    each served whole to an uploader. others: files left out (held by
    requests whose erasure keeps their bytes, their keys gone: the caller
    checks them). Returns the problems."""
    problems = []
    data = server.data_dir
    clients = {t: Client(server.port, t, keepalive=True) for t in tokens}
    try:
        if tmp_files(data):
            problems.append("leftovers in files/tmp: %s" % tmp_files(data))
        key_tmp = [n for n in os.listdir(os.path.join(data, "keys")) if n.endswith(".tmp")]
        if key_tmp:
            problems.append("a key segment's rewrite left %s" % key_tmp)
        for fid, (tok, h, size) in sorted(acked.items()):
            g = clients[tok].get("/v1/files/" + fid)
            if g.status != 200:
                problems.append("acknowledged file %s (%d bytes): GET %s" % (fid, size, g))
            elif sha(g.body) != h or len(g.body) != size:
                problems.append("acknowledged file %s: %d bytes, sha256 %s; sent %d, %s"
                                % (fid, len(g.body), sha(g.body), size, h))
            elif g.headers.get("etag", "").strip('"') != h:
                problems.append("acknowledged file %s: ETag %s, sha256 %s"
                                % (fid, g.headers.get("etag"), h))
        on_disk = stored_files(data) - set(others)
        fkeys = {k for k in wrapped_keys(data) if k.startswith("f-")} - set(others)
        if on_disk != fkeys:
            problems.append("stored files and file keys differ: bytes without a key %s, keys "
                            "without bytes %s" % (sorted(on_disk - fkeys)[:5],
                                                  sorted(fkeys - on_disk)[:5]))
        missing = set(acked) - on_disk
        if missing:
            problems.append("acknowledged files not on disk: %s" % sorted(missing)[:5])
        for fid in sorted((on_disk | fkeys) - set(acked)):
            ok = None
            for c in clients.values():
                g = c.get("/v1/files/" + fid)
                if g.status == 200:
                    ok = g
                    break
                if g.status != 403:
                    problems.append("unacknowledged file %s (stored or keyed): GET %s" % (fid, g))
                    break
            else:
                problems.append("unacknowledged file %s is stored or keyed, but no uploader "
                                "reads it" % fid)
            if ok is not None and ok.headers.get("etag", "").strip('"') != sha(ok.body):
                problems.append("unacknowledged file %s: ETag %s, its bytes' sha256 %s"
                                % (fid, ok.headers.get("etag"), sha(ok.body)))
    finally:
        for c in clients.values():
            c.close()
    return ["%s: %s" % (when, p) for p in problems]


def kill_during_start(server, delay):
    """Starts osse on the server's data and SIGKILLs it after delay
    seconds, whether or not it is serving yet: a crash during the start's
    own repairs (torn key segment tails cut, stale keys and unrecorded
    bytes removed)."""
    args = [OSSE_BIN, "serve", "--data", server.data_dir, "--listen", "127.0.0.1:0"]
    args += server.extra_args
    with open(server.log_path, "ab") as errf:
        errf.write(("\n===== killed %.3fs into its start: %s\n" % (delay, " ".join(args)))
                   .encode())
        errf.flush()
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=errf,
                             stdin=subprocess.DEVNULL)
    time.sleep(delay)
    p.kill()
    p.wait()


class CrashCase(unittest.TestCase):
    maxDiff = None

    def restart(self, rnd):
        """After a kill: half the time (seeded) a start killed on its way
        (within its first 60 ms), then a start."""
        if self.rng.random() < 0.5:
            delay = self.rng.uniform(0, 0.06) * SLOW
            kill_during_start(self.server, delay)
            say("round %d: a start killed after %.3fs" % (rnd, delay))
        self.server.start(timeout=60)

    def setUp(self):
        self.rng = random.Random(SEED)
        say("%s: seed %d (OSSE_CRASH_PII_SEED=%d re-runs it)" % (self.id(), SEED, SEED))
        self.server = Server(extra_args=[CLOCK])
        self.passed = False

    def tearDown(self):
        if self.server.alive():
            self.server.kill()
        if self.passed:
            self.server.cleanup()
        else:
            say("seed %d; server stderr tail (%s):\n%s\ndata kept in %s"
                % (SEED, self.server.log_path, self.server.stderr_tail(60),
                   self.server.data_dir))

    def portals(self, plat, n):
        toks = []
        for i in range(n):
            r = plat.post("/v1/principals", {"role": "portal", "name": "crash pii %d" % i})
            self.assertEqual(r.status, 201, r)
            toks.append(r.json["token"])
        return toks

    def wait_acks(self, fn, n, what):
        deadline = time.time() + 30 * SLOW
        while fn() < n:
            self.assertLess(time.time(), deadline, "%s: fewer than %d in %ds:\n%s"
                            % (what, n, 30 * SLOW, self.server.stderr_tail()))
            time.sleep(0.002)


class TestUploadsUnderKill(CrashCase):

    def test_uploads_rounds(self):
        srv = self.server.start(timeout=60)
        admin = srv.admin_token()
        plat = srv.client(admin)
        tokens = self.portals(plat, 3) + [admin]
        acked = {}
        t0 = time.time()
        for rnd in range(1, ROUNDS + 1):
            up = Uploads(srv.port, tokens, self.rng)
            # The kill: after a random number of 201s, and a random while more.
            after = self.rng.randint(1, 30)
            extra = self.rng.uniform(0, 0.4)
            up.start()
            self.wait_acks(up.count, after, "round %d uploads" % rnd)
            time.sleep(extra)
            up.killed.set()
            srv.kill()
            up.join(self)
            self.assertEqual(up.unexpected, [], "round %d" % rnd)
            acked.update(up.acked)
            say("round %d: killed after %d+ 201s and %.3fs more; %d acknowledged in the round, "
                "%d in all" % (rnd, after, extra, len(up.acked), len(acked)))
            self.restart(rnd)
            problems = check_files(srv, acked, tokens, "after kill %d" % rnd)
            self.assertEqual(problems, [])
        self.assertEqual(srv.stop(), 0, srv.stderr_tail())
        srv.start(timeout=60)
        self.assertEqual(check_files(srv, acked, tokens, "after a clean restart"), [])
        self.assertEqual(srv.stop(), 0, srv.stderr_tail())
        say("uploads: %d rounds, %d files acknowledged, in %.1fs"
            % (ROUNDS, len(acked), time.time() - t0))
        self.passed = True


def erasure_workflow(wid, agency):
    return {
        "id": wid, "title": "Erasure under kill",
        "form": {
            "applicant_name": {"type": "string", "required": True, "pii": True},
            "business_name": {"type": "string", "required": True},
            "id_card": {"type": "file", "pii": True},
        },
        "steps": {"review": {"kind": "task", "agency": agency}},
    }


class TestErasuresUnderKill(CrashCase):

    def make_ended(self, w, wid, n):
        """n ended requests, each with a pii value and a pii file: {rid:
        {"name", "card", "card_name", "card_sha"}}."""
        out = {}
        for i in range(n):
            card = b"%PDF-card " + self.rng.randbytes(self.rng.randint(10, 5000))
            card_name = "card-%s.pdf" % uniq("c")
            r = w.portal.post("/v1/files", raw=card, content_type="application/pdf",
                              headers={"Osse-Filename": card_name})
            self.assertEqual(r.status, 201, r)
            fid = r.json["id"]
            name = "Personname-" + uniq("n")
            rid = w.submit(wid, {"applicant_name": name, "business_name": "Plainshop",
                                 "id_card": fid})["id"]
            if i % 2:
                r = w.portal.post("/v1/requests/%s/withdraw" % rid, {"reason": "changed my mind"})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json["status"], "withdrawn", r)
            else:
                w.decide(rid, "review", "reject", agency=w.A, reason="incomplete")
            out[rid] = {"name": name, "card": fid, "card_name": card_name, "card_sha": sha(card)}
        return out

    def state_of(self, w, rid, q, keys, holding):
        """"complete", "not started", or a description of what is half."""
        plat = w.plat
        r = plat.get("/v1/requests/%s/events" % rid)
        self.assertEqual(r.status, 200, r)
        pde = [e for e in r.json["events"] if e["type"] == "PersonalDataErased"]
        v = plat.get("/v1/requests/" + rid)
        self.assertEqual(v.status, 200, v)
        v = v.json
        name = v["form"]["applicant_name"]
        card = v["form"]["id_card"]
        g = plat.get("/v1/files/" + q["card"])
        facts = {
            "events": len(pde),
            "view": name,
            "card_name": card.get("name") if isinstance(card, dict) else card,
            "erased_at": "erased_at" in v,
            "key": rid in keys, "card_key": q["card"] in keys,
            "key_in": holding[q["key"]], "card_key_in": holding[q["card_key"]],
            "file": g.status,
        }
        if (len(pde) == 1 and name == "[erased]" and facts["card_name"] == "[erased]" and
                facts["erased_at"] and not facts["key"] and not facts["card_key"] and
                not facts["key_in"] and not facts["card_key_in"] and g.status == 410):
            return "complete"
        if (not pde and name == q["name"] and facts["card_name"] == q["card_name"] and
                not facts["erased_at"] and keys.get(rid) == q["key"] and
                keys.get(q["card"]) == q["card_key"] and g.status == 200 and
                sha(g.body) == q["card_sha"]):
            return "not started"
        return "half: %s" % facts

    def states(self, w, reqs):
        keys = wrapped_keys(self.server.data_dir)
        needles = [q[k] for q in reqs.values() for k in ("key", "card_key")]
        holding = files_holding(self.server.data_dir, needles)
        return {rid: self.state_of(w, rid, q, keys, holding) for rid, q in reqs.items()}

    def reconnect(self, w):
        for name in ("plat", "portal", "portal2", "auditor", "payment", "anon"):
            getattr(w, name).port = self.server.port
        for c in w.ag.values():
            c.port = self.server.port

    def test_erasure_rounds(self):
        srv = self.server.start(timeout=60)
        w = World(srv)
        wid = uniq("er")
        w.publish(erasure_workflow(wid, w.A))
        admin = srv.admin_token()
        up_tokens = self.portals(w.plat, 1)
        acked_files = {}
        all_reqs = {}
        t0 = time.time()
        for rnd in range(1, ROUNDS + 1):
            reqs = self.make_ended(w, wid, ERASURES)
            all_reqs.update(reqs)
            keys = wrapped_keys(srv.data_dir)
            for rid, q in reqs.items():
                q["key"], q["card_key"] = keys.get(rid), keys.get(q["card"])
                self.assertEqual(len(q["key"] or b""), 72, "the key of %s is filed" % rid)
                self.assertEqual(len(q["card_key"] or b""), 72, "the card's key is filed")
                self.assertEqual(w.plat.get("/v1/files/" + q["card"]).status, 200)
            lock = threading.Lock()
            killed = threading.Event()
            oks, unexpected = {}, []

            def eraser(rids):
                c = Client(srv.port, admin, timeout=30)
                try:
                    for rid in rids:
                        if killed.is_set():
                            return
                        r = c.call("DELETE", "/v1/requests/%s/personal-data" % rid,
                                   {"reason": "The applicant asked (PDPA s.33)"})
                        with lock:
                            if r.status == 200 and r.json.get("id") == rid:
                                oks[rid] = r.json
                            elif not killed.is_set():
                                unexpected.append((rid, r.status, r.body[:300]))
                except Exception as ex:  # noqa: BLE001 - the kill cuts connections
                    if not killed.is_set():
                        with lock:
                            unexpected.append("DELETE failed before the kill: %r\n%s"
                                              % (ex, traceback.format_exc()))
                finally:
                    c.close()

            order = sorted(reqs)
            self.rng.shuffle(order)
            nthreads = 4
            threads = [threading.Thread(target=eraser, args=(order[i::nthreads],),
                                        daemon=True)
                       for i in range(nthreads)]
            up = Uploads(srv.port, up_tokens, self.rng, small=True)
            after = self.rng.randint(0, ERASURES - 1)
            extra = self.rng.uniform(0, 0.02)
            up.start()
            for t in threads:
                t.start()

            def count():
                with lock:
                    return len(oks)

            self.wait_acks(count, after, "round %d erasures" % rnd)
            time.sleep(extra)
            killed.set()
            up.killed.set()
            srv.kill()
            for t in threads:
                t.join(60)
                self.assertFalse(t.is_alive(), "an erasing thread hangs after the kill")
            up.join(self)
            self.assertEqual(unexpected, [], "round %d" % rnd)
            self.assertEqual(up.unexpected, [], "round %d" % rnd)
            acked_files.update(up.acked)
            got = dict(oks)

            self.restart(rnd)
            self.reconnect(w)
            st = self.states(w, reqs)
            half = {rid: s for rid, s in st.items() if s not in ("complete", "not started")}
            self.assertEqual(half, {}, "round %d: half-done erasures" % rnd)
            lost = [rid for rid in got if st[rid] != "complete"]
            self.assertEqual(lost, [], "round %d: answered 200, not complete" % rnd)
            done = sorted(rid for rid, s in st.items() if s == "complete")
            say("round %d: killed after %d+ 200s and %.3fs more: %d answered 200, %d complete, "
                "%d not started; %d uploads acknowledged beside"
                % (rnd, after, extra, len(got), len(done), len(reqs) - len(done),
                   len(up.acked)))
            cards = {q["card"] for q in all_reqs.values()}
            self.assertEqual(check_files(srv, acked_files, up_tokens, "round %d" % rnd,
                                         cards), [])
            for rid, ans in got.items():
                self.assertEqual(ans["fields"], ["form.applicant_name", "form.id_card.name"], ans)

            # The rest erased now; the done ones are done.
            for rid in sorted(reqs):
                r = w.plat.call("DELETE", "/v1/requests/%s/personal-data" % rid,
                                {"reason": "After the crash"})
                if st[rid] == "complete":
                    self.assertEqual((r.status, r.error_code), (409, "already_erased"), r)
                else:
                    self.assertEqual(r.status, 200, r)
            st = self.states(w, reqs)
            self.assertEqual({rid for rid, s in st.items() if s != "complete"}, set(),
                             "round %d: erased after the restart: %s" % (rnd, st))
            self.assertEqual(srv.stop(), 0, srv.stderr_tail())
            srv.start(timeout=60)
            self.reconnect(w)
            st = self.states(w, reqs)
            self.assertEqual({rid for rid, s in st.items() if s != "complete"}, set(),
                             "round %d: after a clean restart: %s" % (rnd, st))
        self.assertEqual(srv.stop(), 0, srv.stderr_tail())
        say("erasures: %d rounds of %d in %.1fs" % (ROUNDS, ERASURES, time.time() - t0))
        self.passed = True


if __name__ == "__main__":
    main()
