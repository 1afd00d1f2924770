"""osse_harness.py: what the integration tests share.

The tests run the real `osse` binary (env OSSE_BIN) on 127.0.0.1 in a
temporary data directory and talk to it over real HTTP, so that what they
check is the external contract of SPEC.md and nothing inside. This module
holds: starting, stopping and killing a server; a tiny HTTP client that
answers (status, headers, parsed JSON); a raw-socket helper for malformed
HTTP and pipelining; and set-up helpers (calendar, agencies, principals,
workflows) plus a few checks every test file uses.

Python standard library only.
"""

import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import unittest

OSSE_BIN = os.environ.get("OSSE_BIN") or os.path.join(
    os.environ.get("OSSE_SRC", os.path.join(os.path.dirname(__file__), "..", "..")),
    "build", "osse")

READY_RE = re.compile(rb"osse: listening on ([0-9.]+):([0-9]+)")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

STEP_STATES = {"pending", "open", "waiting_applicant", "approved", "rejected", "done",
               "skipped", "failed", "cancelled"}
REQUEST_STATUSES = {"in_progress", "awaiting_info", "awaiting_payment", "completed",
                    "rejected", "withdrawn", "expired"}

TH_GOV = {"utc_offset": "+07:00", "workdays": ["mon", "tue", "wed", "thu", "fri"],
          "hours": ["08:30", "16:30"], "holidays": ["2026-12-07", "2026-12-10", "2026-12-31"]}


# --------------------------------------------------------------------------
# The server process


def free_port():
    """A TCP port on 127.0.0.1 free at the moment of asking (for a test's own
    listener, or a server started with a fixed port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One osse process on a data directory. The directory outlives the
    process so that a test can kill it and start another on the same data."""

    def __init__(self, data_dir=None, workflows_dir=None, extra_args=()):
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="osse-it-")
        self.workflows_dir = workflows_dir
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.data_dir, "..",
                                     os.path.basename(self.data_dir) + ".stderr")
        self.log_path = os.path.abspath(self.log_path)
        self.starts = 0
        self.stdout_lines = []  # every line the processes wrote on stdout

    def start(self, timeout=30):
        if not os.path.exists(OSSE_BIN):
            raise RuntimeError("osse binary not found at %s (set OSSE_BIN)" % OSSE_BIN)
        args = [OSSE_BIN, "serve", "--data", self.data_dir, "--listen", "127.0.0.1:0"]
        if self.workflows_dir:
            args += ["--workflows", self.workflows_dir]
        args += self.extra_args
        # Every ended request leaves memory once durable, so that every use
        # of one reads it back from disk (engine/cache.c): the suite proves
        # each path takes that step. OSSE_TEST_REQUEST_CACHE=default runs it
        # with the server's own default instead.
        cache = os.environ.get("OSSE_TEST_REQUEST_CACHE", "0")
        if cache != "default" and "--request-cache" not in self.extra_args:
            args += ["--request-cache", cache]
        self.starts += 1
        errf = open(self.log_path, "ab")
        errf.write(("\n===== start %d: %s\n" % (self.starts, " ".join(args))).encode())
        errf.flush()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errf,
                                     stdin=subprocess.DEVNULL)
        errf.close()
        got = {}

        def read_ready():
            # Reads stdout until the ready line, then keeps draining it so
            # that the server never blocks on a full pipe.
            for line in iter(self.proc.stdout.readline, b""):
                self.stdout_lines.append(line)
                if "port" not in got:
                    m = READY_RE.search(line)
                    if m:
                        got["port"] = int(m.group(2))
                        got["event"].set()
            got["event"].set()

        got["event"] = threading.Event()
        t = threading.Thread(target=read_ready, daemon=True)
        t.start()
        if not got["event"].wait(timeout) or "port" not in got:
            rc = self.proc.poll()
            self.kill()
            raise RuntimeError("osse did not print its listening line within %ss (exit %s); "
                               "stderr tail:\n%s" % (timeout, rc, self.stderr_tail()))
        self.port = got["port"]
        return self

    def stderr_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no stderr)"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=20):
        """SIGTERM and wait: a clean stop. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("osse did not exit within %ss of SIGTERM" % timeout)
        rc = self.proc.returncode
        self._close_pipe()
        return rc

    def _close_pipe(self):
        try:
            self.proc.stdout.close()
        except Exception:  # noqa: BLE001 - the reader thread may hold it
            pass
        self.proc = None

    def kill(self):
        """SIGKILL: a crash."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._close_pipe()

    def admin_token(self):
        with open(os.path.join(self.data_dir, "admin.token")) as f:
            return f.read().strip()

    def client(self, token=None, keepalive=False):
        return Client(self.port, token=token, keepalive=keepalive)

    def cleanup(self):
        try:
            self.kill()
        finally:
            if self.own_dir and not os.environ.get("OSSE_KEEP"):
                shutil.rmtree(self.data_dir, ignore_errors=True)
                try:
                    os.unlink(self.log_path)
                except OSError:
                    pass


def sanitized():
    """A sanitizer build (ASan links libasan) runs several times slower: its
    time bounds and sizes are that much looser."""
    try:
        out = subprocess.run(["ldd", OSSE_BIN], capture_output=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return b"libasan" in out or b"libtsan" in out


def key_segment_records(keys_dir, whole=False):
    """[(id, wrapped key)] of the key store's segments, in segment and file
    order (records id_len (1) || id || wrapped (72), storage/keystore.h;
    a removed record's filler, 0xFF || length || zeros, skipped).
    A record cut short (one being appended while a server runs) ends its
    segment's list; whole=True asserts that there is none."""
    names = sorted((n for n in os.listdir(keys_dir) if n.endswith(".seg")),
                   key=lambda n: int(n[:-4]))
    out = []
    for name in names:
        with open(os.path.join(keys_dir, name), "rb") as fh:
            b = fh.read()
        off = 0
        while off < len(b) and b[off]:
            if b[off] == 0xFF and off + 2 <= len(b) and off + b[off + 1] <= len(b):
                off += b[off + 1]  # a filler
                continue
            if off + 1 + b[off] + 72 > len(b):
                break
            n = b[off]
            out.append((b[off + 1:off + 1 + n].decode(), b[off + 1 + n:off + 1 + n + 72]))
            off += 1 + n + 72
        assert not whole or off == len(b), "%s: %d bytes past its last whole record" % (
            name, len(b) - off)
    return out


def key_ids(keys_dir):
    """The ids whose keys the key store folder's segments hold."""
    return {i for i, _ in key_segment_records(keys_dir)}


def wrapped_keys(data_dir):
    """{id: its 72-byte wrapped key} of <data>/keys."""
    return dict(key_segment_records(os.path.join(data_dir, "keys")))


def files_holding(root, needles):
    """{needle: [paths of the files under root holding it]}: every regular
    file, every byte, each file read once."""
    found = {n: [] for n in needles}
    for d, _, names in os.walk(root):
        for name in names:
            p = os.path.join(d, name)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            for n in needles:
                if n in data:
                    found[n].append(p)
    return found


def run_osse(*args, check=True):
    """Runs `osse ARGS...` (replay, export, verify...) to its end; with check,
    a non-zero exit fails with its stderr."""
    p = subprocess.run([OSSE_BIN] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=300)
    if check and p.returncode != 0:
        raise AssertionError("osse %s: rc %d\n%s" % (" ".join(args), p.returncode,
                                                      p.stderr.decode(errors="replace")))
    return p


def metric(client, name):
    """One sample of GET /metrics (a metric without labels), as an int."""
    r = client.get("/metrics")
    assert r.status == 200, r
    m = re.search(r"^%s (\d+)$" % re.escape(name), r.body.decode(), re.M)
    assert m, name
    return int(m.group(1))


def replay_data(data_dir, *extra):
    """`osse replay --data DIR`: its last line (the digest) and the counts of
    its "records N equal, M missing, K different, X extra" line (the stored
    request records against the requests it rebuilt from the log alone),
    with those
    of its "indexes N equal, M missing, K different, X extra" line under
    "indexes" (a different or extra entry makes the replay fail)."""
    p = run_osse("replay", "--data", data_dir, *extra, check=False)
    out = p.stdout.decode().strip().splitlines()
    if p.returncode != 0:
        raise AssertionError("osse replay --data: rc %d\n%s\n%s" % (
            p.returncode, "\n".join(out[-5:]), p.stderr.decode(errors="replace")))
    rec, ix, events, snapshot = None, None, None, None
    for line in out:
        m = re.match(r"records (\d+) equal, (\d+) missing, (\d+) different, (\d+) extra$",
                     line)
        if m:
            rec = dict(zip(("equal", "missing", "different", "extra"), map(int, m.groups())))
        m = re.match(r"indexes (\d+) equal, (\d+) missing, (\d+) different, (\d+) extra$", line)
        if m:
            ix = dict(zip(("equal", "missing", "different", "extra"), map(int, m.groups())))
        m = re.match(r"snapshot (equal|different|missing)$", line)
        if m:
            snapshot = m.group(1)
        m = re.match(r"events (\d+)$", line)
        if m:
            events = int(m.group(1))
    if rec is None or ix is None:
        raise AssertionError("osse replay --data printed no records line:\n" + "\n".join(out))
    rec["events"] = events
    rec["indexes"] = ix
    # The counters a start restores, against the replay's (a different one
    # makes the replay fail).
    rec["snapshot"] = snapshot
    return out[-1], rec


# --------------------------------------------------------------------------
# HTTP client

# When a list, every answer a Client gets is appended to it as
# {"method","path","request","status","content_type","body"} (request: the
# JSON body sent, or None; body: the parsed JSON answer, or None):
# test_openapi.py checks the suite's real calls against the OpenAPI
# document this way.
CALL_LOG = None


def _sent_json(body, raw, headers):
    if body is not None:
        return body
    if raw is None or not headers.get("Content-Type", "").startswith("application/json"):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names -> value
        self.body = body
        self.json = None
        if body:
            try:
                self.json = json.loads(body)
            except ValueError:
                self.json = None

    def __repr__(self):
        b = self.body[:600].decode("utf-8", "replace") if self.body else ""
        return "<%s %s>" % (self.status, b)

    @property
    def error_code(self):
        try:
            return self.json["error"]["code"]
        except (TypeError, KeyError):
            return None


class Client:
    """A tiny HTTP/1.1 client. token is the default bearer token; a call may
    pass token= to override it (token="" sends no Authorization header).
    With keepalive=True one connection is reused and never silently retried
    (a non-idempotent POST must not be sent twice behind the test's back)."""

    def __init__(self, port, token=None, keepalive=False, timeout=30):
        self.port = port
        self.token = token
        self.keepalive = keepalive
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _conn(self):
        if self.conn is None or not self.keepalive:
            self.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        return self.conn

    def call(self, method, path, body=None, token=None, headers=None, raw=None,
             content_type=None):
        """body: a JSON value (sent as JSON); raw: bytes or str sent as is."""
        h = {}
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        data = None
        if raw is not None:
            data = raw.encode() if isinstance(raw, str) else raw
            h["Content-Type"] = content_type or "application/json"
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = content_type or "application/json"
        if headers:
            h.update(headers)
        if not self.keepalive:
            h["Connection"] = "close"
        conn = self._conn()
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            rb = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            if not self.keepalive or hdrs.get("connection", "").lower() == "close":
                self.close()
            resp = Resp(r.status, hdrs, rb)
            if CALL_LOG is not None:
                CALL_LOG.append({"method": method, "path": path,
                                 "request": _sent_json(body, raw, h), "status": r.status,
                                 "content_type": hdrs.get("content-type"), "body": resp.json})
            return resp
        except Exception:
            self.close()
            raise

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body=body, **kw)

    def put(self, path, body=None, **kw):
        return self.call("PUT", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


# --------------------------------------------------------------------------
# Raw sockets: malformed HTTP and pipelining

def raw_exchange(port, data, timeout=5.0, shut_write=False, chunks=None):
    """Sends data (bytes) in one write (or the list chunks, one write each,
    ignoring a peer that stops reading), then reads until the peer closes or
    timeout passes without data. Returns the bytes received."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        try:
            if chunks is None:
                s.sendall(data)
            else:
                for c in chunks:
                    s.sendall(c)
            if shut_write:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading everything
        s.settimeout(timeout)
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not b:
                break
            out += b
    finally:
        s.close()
    return out


def raw_responses(port, data, n, timeout=5.0):
    """Sends data in one write and reads until n complete responses have
    arrived (or the peer closes / timeout). Returns a list of parsed
    (status, headers, body) tuples."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    buf = b""
    try:
        s.sendall(data)
        deadline = time.time() + timeout
        while True:
            resps, _ = parse_responses(buf)
            if len(resps) >= n or time.time() > deadline:
                return resps
            s.settimeout(max(0.05, deadline - time.time()))
            try:
                b = s.recv(65536)
            except (socket.timeout, OSError):
                return parse_responses(buf)[0]
            if not b:
                return parse_responses(buf)[0]
            buf += b
    finally:
        s.close()


def parse_responses(buf):
    """Parses as many complete HTTP/1.1 responses (Content-Length framed, or
    chunked) as buf holds. Returns (list of (status, headers, body), rest)."""
    out = []
    while True:
        i = buf.find(b"\r\n\r\n")
        if i < 0:
            return out, buf
        head = buf[:i].decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", head[0])
        if not m:
            return out, buf
        status = int(m.group(1))
        hdrs = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        rest = buf[i + 4:]
        if "chunked" in hdrs.get("transfer-encoding", "").lower():
            body = b""
            while True:
                j = rest.find(b"\r\n")
                if j < 0:
                    return out, buf
                size = int(rest[:j].split(b";")[0], 16)
                if len(rest) < j + 2 + size + 2:
                    return out, buf
                body += rest[j + 2:j + 2 + size]
                rest = rest[j + 2 + size + 2:]
                if size == 0:
                    break
        else:
            n = int(hdrs.get("content-length", "0"))
            if len(rest) < n:
                return out, buf
            body, rest = rest[:n], rest[n:]
        out.append((status, hdrs, body))
        buf = rest


# --------------------------------------------------------------------------
# Data helpers

def citizen_id(rng=random):
    """A random 13-digit Thai citizen id with a correct check digit."""
    d = [rng.randint(1, 8)] + [rng.randint(0, 9) for _ in range(11)]
    s = sum(d[i] * (13 - i) for i in range(12))
    d.append((11 - s % 11) % 10)
    return "".join(map(str, d))


def bad_citizen_id(rng=random):
    good = citizen_id(rng)
    last = (int(good[-1]) + 1 + rng.randint(0, 8)) % 10
    return good[:-1] + str(last)


def uniq(prefix="t"):
    return prefix + "-" + "".join(random.choice(string.ascii_lowercase + string.digits)
                                  for _ in range(8))


FORM_FIELDS = {
    "applicant_id": {"type": "citizen_id", "required": True, "pii": True},
    "applicant_name": {"type": "string", "required": True, "pii": True, "max_length": 50},
    "business_name": {"type": "string", "required": True},
    "area_sqm": {"type": "number", "required": True, "min": 1},
    "seats": {"type": "integer", "min": 0},
    "district": {"type": "enum", "values": ["bang-rak", "pathum-wan", "khlong-toei"]},
    "opening_date": {"type": "date"},
    "has_parking": {"type": "boolean"},
}


def three_agency_workflow(wid, a, b, c, calendar="th-gov", title="Three agencies", sla=True):
    """intake (a) -> [review_b (b), review_c (c)] -> final (a): a fan-out and
    a join over three agencies."""
    d = {
        "id": wid,
        "title": title,
        "form": json.loads(json.dumps(FORM_FIELDS)),
        "steps": {
            "intake": {"kind": "task", "agency": a},
            "review_b": {"kind": "task", "agency": b, "after": ["intake"]},
            "review_c": {"kind": "task", "agency": c, "after": ["intake"]},
            "final": {"kind": "task", "agency": a, "after": ["review_b", "review_c"]},
        },
    }
    if calendar:
        d["calendar"] = calendar
        if sla:
            d["steps"]["intake"]["sla"] = "2 working days"
            d["steps"]["review_b"]["sla"] = "5 working days"
            d["steps"]["review_c"]["sla"] = "P10D"
    return d


def good_form(rng=random, **over):
    f = {
        "applicant_id": citizen_id(rng),
        "applicant_name": "Somchai Jaidee %d" % rng.randint(0, 10 ** 6),
        "business_name": "Noodle shop %d" % rng.randint(0, 10 ** 6),
        "area_sqm": 42.5,
        "seats": 20,
        "district": "bang-rak",
        "opening_date": "2027-01-15",
    }
    f.update(over)
    return f


class World:
    """A platform client plus the calendar, three fresh agencies, their
    agency clients, two portals, an auditor and a payment principal, all
    named with a unique suffix so that tests on one server do not see each
    other's inbox entries."""

    def __init__(self, server, sfx=None, calendar=True):
        self.server = server
        self.sfx = sfx or uniq("w")
        self.admin_token = server.admin_token()
        self.plat = server.client(self.admin_token)
        if calendar:
            r = self.plat.put("/v1/calendars/th-gov", TH_GOV)
            assert r.status in (200, 201), r
        self.agencies = ["a-" + self.sfx, "b-" + self.sfx, "c-" + self.sfx]
        self.A, self.B, self.C = self.agencies
        self.secrets = {}
        self.ag = {}
        for ag in self.agencies:
            r = self.plat.put("/v1/agencies/" + ag, {"name": "Agency " + ag})
            assert r.status in (200, 201), r
            self.secrets[ag] = r.json.get("webhook_secret")
            self.ag[ag] = server.client(self.principal("agency", agency=ag)["token"])
        self.portal = server.client(self.principal("portal")["token"])
        self.portal2 = server.client(self.principal("portal")["token"])
        self.auditor = server.client(self.principal("auditor")["token"])
        self.payment = server.client(self.principal("payment")["token"])
        self.anon = server.client("")

    def principal(self, role, agency=None, name=None):
        body = {"role": role, "name": name or ("%s %s" % (role, self.sfx))}
        if agency:
            body["agency"] = agency
        r = self.plat.post("/v1/principals", body)
        assert r.status == 201, r
        assert r.json.get("id") and r.json.get("token"), r
        return r.json

    def publish(self, definition, yaml_text=None):
        if yaml_text is not None:
            r = self.plat.post("/v1/workflows", raw=yaml_text, content_type="application/yaml")
        else:
            r = self.plat.post("/v1/workflows", definition)
        assert r.status == 201, r
        return r.json

    def workflow(self, wid=None, **kw):
        wid = wid or uniq("wf")
        self.publish(three_agency_workflow(wid, self.A, self.B, self.C, **kw))
        return wid

    def submit(self, wid, form=None, portal=None, **kw):
        r = (portal or self.portal).post("/v1/requests",
                                         {"workflow": wid, "form": form or good_form()}, **kw)
        assert r.status == 201, r
        return r.json

    def view(self, rid, client=None):
        r = (client or self.plat).get("/v1/requests/" + rid)
        assert r.status == 200, r
        return r.json

    def decide(self, rid, step, outcome, agency=None, reason=None, expected_version=None,
               expect=200, **kw):
        body = {"outcome": outcome}
        if reason is not None:
            body["reason"] = reason
        if expected_version is not None:
            body["expected_version"] = expected_version
        if agency is None:
            agency = self.agency_of_step(rid, step)
        r = self.ag[agency].post("/v1/tasks/%s/%s/decision" % (rid, step), body, **kw)
        assert r.status == expect, (rid, step, outcome, r)
        return r.json

    def agency_of_step(self, rid, step):
        return step_of(self.view(rid), step)["agency"]

    def inbox(self, agency, client=None, state="open", limit=None):
        """Every task of the inbox, following next_cursor."""
        out = []
        cursor = None
        q = "state=" + state if state else ""
        if limit:
            q += "&limit=%d" % limit
        for _ in range(10000):
            path = "/v1/agencies/%s/tasks?%s" % (agency, q)
            if cursor:
                path += "&cursor=" + cursor
            r = (client or self.plat).get(path)
            assert r.status == 200, r
            out += r.json["tasks"]
            cursor = r.json.get("next_cursor")
            if not cursor:
                return out
        raise AssertionError("inbox pagination does not end")

    def log_events(self, after=0):
        return log_events(self.plat, after)

    def log_size(self):
        ev = log_events(self.plat)
        return ev[-1]["seq"] if ev else 0


def step_of(view, name):
    for s in view["steps"]:
        if s["name"] == name:
            return s
    raise AssertionError("no step %s in %s" % (name, view))


def states(view):
    return {s["name"]: s["state"] for s in view["steps"]}


def log_events(client, after=0, limit=1000):
    """Every event of /v1/log after `after`, following `next`."""
    out = []
    for _ in range(100000):
        r = client.get("/v1/log?after=%d&limit=%d" % (after, limit))
        assert r.status == 200, r
        evs = r.json["events"]
        out += evs
        nxt = r.json.get("next")
        if nxt is None or not evs:
            return out
        # Continue after the last seq seen: robust whichever way a server
        # reads `next` (test_errors checks `next` itself).
        after = out[-1]["seq"]
    raise AssertionError("log pagination does not end")


class FailingReceiver:
    """An HTTP server on 127.0.0.1 that answers every POST with 500 and
    counts the attempts (a webhook receiver or registry that is down).
    Setting `status` (200) brings it back up."""

    def __init__(self):
        self.attempts = 0
        self.status = 500
        self.lock = threading.Lock()
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with rec.lock:
                    rec.attempts += 1
                self.send_response(rec.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return self.attempts

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def assert_error(tc, r, status, code=None, msg=None):
    """r is a SPEC §11 error with this status (and code)."""
    tc.assertEqual(r.status, status, msg or r)
    ct = r.headers.get("content-type", "")
    tc.assertTrue(ct.startswith("application/json"), "content-type %r of %r" % (ct, r))
    tc.assertIsInstance(r.json, dict, r)
    tc.assertIn("error", r.json, r)
    e = r.json["error"]
    tc.assertIsInstance(e.get("code"), str, r)
    tc.assertIsInstance(e.get("message"), str, r)
    tc.assertTrue(e["message"], r)
    tc.assertIsInstance(e.get("details"), list, r)
    if code is not None:
        tc.assertEqual(e["code"], code, msg or r)


def detail_paths(r):
    return [d.get("path") for d in r.json["error"]["details"]]


class ServerTestCase(unittest.TestCase):
    """One server for the whole class (started in setUpClass)."""

    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server().start()

    @classmethod
    def tearDownClass(cls):
        """Stops the server with SIGTERM: it must exit 0 (a clean stop is
        part of the contract, and sanitizer builds report leaks and misuse
        there)."""
        if cls.server is None:
            return
        srv = cls.server
        problem = None
        try:
            if srv.alive():
                rc = srv.stop()
                if rc != 0:
                    problem = "osse exited with %s on SIGTERM; stderr tail:\n%s" % (
                        rc, srv.stderr_tail(60))
            else:
                problem = "osse died during the tests; stderr tail:\n%s" % srv.stderr_tail(60)
        finally:
            if problem:
                srv.own_dir = False  # keep the data for a post-mortem
            srv.cleanup()
        if problem:
            raise AssertionError(problem)

    def world(self, **kw):
        return World(self.server, **kw)

    def assertServerAlive(self):
        self.assertTrue(self.server.alive(), "server died:\n" + self.server.stderr_tail())


def main():
    unittest.main(verbosity=2)
