"""test_logs.py: what the server says on stderr (SPEC §10 logs, §8 nothing
personal in the server's logs) and the command line's help.

One server (test clock, webhook retries shortened, --log-level debug) lives
through a scripted day: agencies and principals are made, a request with a
distinctive applicant is submitted and decided with a distinctive reason,
an agency's webhook receiver always answers 500 (its URL holds secrets in
its path and query), a lookup registry always answers 500, an SLA is
breached by moving the test clock, a tracking code is looked up, a bad
submission is refused; then the server is stopped with SIGTERM. Its whole
stderr is then read:

- every line is logfmt with `ts` (RFC 3339 UTC, ms), `level` and `msg`;
- the expected lines are there, with their fields: start-up (data folder,
  admin token path, replay, listen address, log size), each state-changing
  call (method, route pattern, status, latency, principal) and reads at
  debug, failed webhook attempts (URL cut to scheme://host:port), failed
  lookup attempts, the breach, shutdown (signal, final log size);
- none of these appears anywhere: the applicants' names and citizen ids, a
  business name, the decision reason, the tracking code, the admin token and
  every principal's token, the agencies' webhook secrets, the secrets in the
  receiver's and the registry's URLs.

Then: --log-level warn drops info lines, the default drops reads, an unknown
level is a usage error; `osse --help`, `-h`, `osse help [CMD]` and
`osse CMD --help` print usage on stdout and exit 0; unknown commands and bad
flags print usage on stderr and exit 2.

Python standard library only.
"""

import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (OSSE_BIN, TIME_RE, FailingReceiver, Server,  # noqa: E402
                          World, citizen_id, main, uniq)

LEVELS = {"debug", "info", "warn", "error"}
AGENCY_TYPES = {"StepOpened", "TaskEscalated", "InfoProvided", "SlaWarned", "SlaBreached"}


def parse_logfmt(line):
    """The pairs of one logfmt line (brandur.org/logfmt), values unescaped;
    raises ValueError when the line is not logfmt."""
    pairs = []
    i, n = 0, len(line)
    while i < n:
        if line[i] == " ":
            i += 1
            continue
        m = re.compile(r"[^\s=\"]+").match(line, i)
        if not m:
            raise ValueError("no key at %d: %r" % (i, line))
        key, i = m.group(0), m.end()
        if i >= n or line[i] == " ":
            pairs.append((key, True))
            continue
        if line[i] != "=":
            raise ValueError("no = after %s: %r" % (key, line))
        i += 1
        if i < n and line[i] == '"':
            i += 1
            out = []
            while True:
                if i >= n:
                    raise ValueError("unterminated quote: %r" % line)
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if ord(c) < 0x20:
                    raise ValueError("raw control byte: %r" % line)
                if c == "\\":
                    e = line[i + 1:i + 2]
                    if e in ('"', "\\"):
                        out.append(e)
                        i += 2
                    elif e in ("n", "r", "t"):
                        out.append({"n": "\n", "r": "\r", "t": "\t"}[e])
                        i += 2
                    elif e == "u" and re.match(r"[0-9a-f]{4}", line[i + 2:i + 6]):
                        out.append(chr(int(line[i + 2:i + 6], 16)))
                        i += 6
                    elif e == "x" and re.match(r"[0-9a-f]{2}", line[i + 2:i + 4]):
                        out.append(chr(int(line[i + 2:i + 4], 16)))
                        i += 4
                    else:
                        raise ValueError("bad escape: %r" % line)
                    continue
                out.append(c)
                i += 1
            if i < n and line[i] != " ":
                raise ValueError("text after a quoted value: %r" % line)
            pairs.append((key, "".join(out)))
        else:
            m = re.compile(r"[^\s\"=]*").match(line, i)
            i = m.end()
            if i < n and line[i] != " ":
                raise ValueError("bad bare value: %r" % line)
            pairs.append((key, m.group(0)))
    return pairs


def server_lines(srv):
    """The server's stderr as parsed logfmt dicts (the harness's own
    '===== start' markers left out)."""
    with open(srv.log_path, "rb") as f:
        text = f.read().decode("utf-8")
    out = []
    for raw in text.split("\n"):
        if not raw or raw.startswith("===== start "):
            continue
        pairs = parse_logfmt(raw)
        d = dict(pairs)
        d["_raw"] = raw
        out.append((pairs, d))
    return text, out

def wait_types(client, rid, type_, n, timeout=30.0):
    end = time.monotonic() + timeout
    while True:
        r = client.get("/v1/requests/%s/events" % rid)
        assert r.status == 200, r
        evs = [e for e in r.json["events"] if e["type"] == type_]
        if len(evs) >= n or time.monotonic() > end:
            return evs
        time.sleep(0.05)


class TestServerLog(unittest.TestCase):
    """One scripted run, then its stderr is examined."""

    @classmethod
    def setUpClass(cls):
        cls.hook = FailingReceiver()
        cls.registry = FailingReceiver()
        cls.srv = Server(extra_args=["--test-clock=2030-01-07T09:00:00+07:00", "--hook-retry-base-ms", "50",
                                     "--hook-retry-span-ms", "300", "--log-level", "debug"])
        cls.secrets = {}   # what must never be logged: label -> text
        try:
            cls.srv.start()
            cls.run_day()
            cls.rc = cls.srv.stop()
            cls.text, cls.lines = server_lines(cls.srv)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.hook.close()
        cls.registry.close()
        cls.srv.cleanup()

    @classmethod
    def run_day(cls):
        srv, s = cls.srv, cls.secrets
        # The log size the listening line reports: before any call.
        ev = srv.client(srv.admin_token()).get("/v1/log?limit=10000").json["events"]
        cls.size_at_listen = ev[-1]["seq"] if ev else 0
        w = World(srv)
        cls.w = w
        s["admin token"] = w.admin_token
        for name, cl in [("portal", w.portal), ("portal2", w.portal2), ("auditor", w.auditor),
                         ("payment", w.payment)] + [("agency " + a, w.ag[a]) for a in w.ag]:
            s[name + " token"] = cl.token
        for a, sec in w.secrets.items():
            s["secret of " + a] = sec
        # A portal and an agency principal of this test's own, ids known.
        p = w.principal("portal", name="log portal")
        cls.portal_id, cls.portal = p["id"], srv.client(p["token"])
        s["log portal token"] = p["token"]
        p = w.principal("agency", agency=w.A, name="log agency")
        cls.agency_id, cls.agency = p["id"], srv.client(p["token"])
        s["log agency token"] = p["token"]
        tag = uniq("x").split("-")[1]
        # Agency A's webhook: secrets in the path and the query.
        hook_url = "http://127.0.0.1:%d/hook/PathSecret%s?token=QuerySecret%s" % (
            cls.hook.port, tag, tag)
        r = w.plat.put("/v1/agencies/" + w.A, {"name": "Agency A", "webhook_url": hook_url})
        assert r.status == 200, r
        s["A's new secret"] = r.json["webhook_secret"]
        s["hook path secret"] = "PathSecret" + tag
        s["hook query secret"] = "QuerySecret" + tag
        cls.hook_origin = "http://127.0.0.1:%d" % cls.hook.port
        # A registry whose lookups fail.
        cls.reg_agency = "reg-" + tag
        reg_url = "http://127.0.0.1:%d/lookup?key=LookupSecret%s" % (cls.registry.port, tag)
        r = w.plat.put("/v1/agencies/" + cls.reg_agency, {"name": "Registry",
                                                           "lookup_url": reg_url})
        assert r.status == 201, r
        s["registry secret"] = r.json["webhook_secret"]
        s["lookup query secret"] = "LookupSecret" + tag
        cls.reg_origin = "http://127.0.0.1:%d" % cls.registry.port

        form_fields = {"applicant_id": {"type": "citizen_id", "required": True, "pii": True},
                       "applicant_name": {"type": "string", "required": True, "pii": True},
                       "business_name": {"type": "string", "required": True}}
        cls.wf_task = "wf-task-" + tag
        w.publish({"id": cls.wf_task, "title": "One task", "form": form_fields,
                   "steps": {"review": {"kind": "task", "agency": w.A, "sla": "PT1H"}}})
        cls.wf_link = "wf-link-" + tag
        w.publish({"id": cls.wf_link, "title": "One lookup", "form": form_fields,
                   "steps": {"identity": {"kind": "linkage", "agency": cls.reg_agency,
                                          "input": {"citizen_id": "form.applicant_id"},
                                          "retries": 1, "timeout": "PT5S"}}})

        def form(i):
            cid = citizen_id()
            name = "Applicantname%s%d Surname%s" % (tag, i, tag)
            biz = "Bizname%s%d" % (tag, i)
            s["citizen id %d" % i] = cid
            s["name %d" % i] = name
            s["business %d" % i] = biz
            return {"applicant_id": cid, "applicant_name": name, "business_name": biz}

        # 1: decided with a distinctive reason; its StepOpened webhook fails.
        sub = w.submit(cls.wf_task, form(1), portal=cls.portal)
        cls.rid1 = sub["id"]
        s["tracking code"] = sub["tracking_code"]
        reason = "Reasontext%s the applicant is known" % tag
        s["reason"] = reason
        r = cls.agency.post("/v1/tasks/%s/review/decision" % cls.rid1,
                            {"outcome": "approve", "reason": reason})
        assert r.status == 200, r
        r = w.anon.get("/v1/track/" + sub["tracking_code"])
        assert r.status == 200, r
        # 2: left open until its SLA is breached by the test clock.
        cls.rid2 = w.submit(cls.wf_task, form(2), portal=cls.portal)["id"]
        r = w.plat.post("/v1/test/clock", {"advance": "PT2H"})
        assert r.status == 200, r
        # 3: a lookup that fails twice.
        cls.rid3 = w.submit(cls.wf_link, form(3), portal=cls.portal)["id"]
        # A refused submission: its form values are not logged either.
        bad = form(4)
        bad["applicant_id"] = "12345"
        r = cls.portal.post("/v1/requests", {"workflow": cls.wf_task, "form": bad})
        assert r.status == 422, r
        assert w.view(cls.rid1, w.plat)["status"] == "completed"
        # Every webhook given up, the lookup failed: their lines are written.
        # Agency A hears of each of these events of its requests (SPEC §7).
        cls.deliveries = []
        for rid in (cls.rid1, cls.rid2):
            evs = w.plat.get("/v1/requests/%s/events" % rid).json["events"]
            mine = [(rid, e["type"]) for e in evs if e["type"] in AGENCY_TYPES]
            assert len(wait_types(w.plat, rid, "NotificationFailed", len(mine))) == len(mine)
            cls.deliveries += mine
        assert len(wait_types(w.plat, cls.rid3, "LinkageFailed", 1)) == 1
        cls.size = w.log_size()
        r = w.plat.get("/v1/principals")
        assert r.status == 200, r
        cls.principal_ids = {p["id"] for p in r.json["principals"]}

    # ------------------------------------------------------------------

    def find(self, msg, **fields):
        """The lines with this msg whose fields equal the given ones."""
        return [d for _, d in self.lines
                if d.get("msg") == msg and all(d.get(k) == v for k, v in fields.items())]

    def test_a_clean_stop(self):
        self.assertEqual(self.rc, 0, self.srv.stderr_tail())

    def test_b_every_line_is_logfmt(self):
        self.assertGreater(len(self.lines), 20)
        for pairs, d in self.lines:
            keys = [k for k, _ in pairs]
            self.assertEqual(keys[:3], ["ts", "level", "msg"], d["_raw"])
            self.assertEqual(len(keys), len(set(keys)), d["_raw"])
            self.assertRegex(d["ts"], TIME_RE, d["_raw"])
            self.assertIn(d["level"], LEVELS, d["_raw"])
            self.assertTrue(d["msg"], d["_raw"])

    def test_c_nothing_personal_or_secret(self):
        self.assertGreaterEqual(len(self.secrets), 20)
        for label, value in self.secrets.items():
            self.assertTrue(value and len(value) >= 5, label)
            self.assertNotIn(value, self.text, "the %s is in the server's stderr" % label)
        # Nor the citizen ids' digits split by the log's own quoting.
        for i in (1, 2, 3, 4):
            cid = self.secrets["citizen id %d" % i]
            self.assertNotIn(cid[:8], self.text.replace(self.srv.data_dir, ""))

    def test_d_start_up(self):
        d = self.find("starting")
        self.assertEqual(len(d), 1, self.text)
        self.assertEqual(d[0]["data"], self.srv.data_dir)
        rep = self.find("log replayed", events="0")
        self.assertEqual(len(rep), 1, self.text)
        self.assertRegex(rep[0]["replay_ms"], r"^\d+(\.\d+)?$")
        tok = os.path.join(self.srv.data_dir, "admin.token")
        self.assertEqual(len(self.find("admin token written", path=tok)), 1, self.text)
        ls = self.find("listening")
        self.assertEqual(len(ls), 1, self.text)
        self.assertEqual(ls[0]["addr"], "127.0.0.1:%d" % self.srv.port)
        self.assertEqual(ls[0]["data"], self.srv.data_dir)
        self.assertEqual(ls[0]["admin_token"], tok)
        self.assertEqual(int(ls[0]["events"]), self.size_at_listen)
        self.assertGreaterEqual(self.size_at_listen, 1)  # the first principal
        self.assertEqual(ls[0]["level"], "info")

    def test_e_calls(self):
        calls = self.find("call")
        for d in calls:
            self.assertRegex(d["latency_ms"], r"^\d+\.\d{3}$", d["_raw"])
            self.assertIn(d["principal"], {"-"} | self.principal_ids, d["_raw"])
            self.assertNotIn("r-", d["route"], d["_raw"])  # a pattern, not a path
        portal = self.portal_id
        sub = self.find("call", method="POST", route="/v1/requests", status="201",
                        principal=portal)
        self.assertEqual(len(sub), 3, self.text)
        self.assertTrue(all(d["level"] == "info" for d in sub))
        self.assertEqual(len(self.find("call", method="POST", route="/v1/requests",
                                       status="422", principal=portal)), 1, self.text)
        agency = self.agency_id
        self.assertEqual(len(self.find("call", method="POST",
                                       route="/v1/tasks/:rid/:step/decision", status="200",
                                       principal=agency, level="info")), 1, self.text)
        self.assertGreaterEqual(len(self.find("call", method="PUT", route="/v1/agencies/:id",
                                              status="201")), 4, self.text)
        self.assertEqual(len(self.find("call", method="POST", route="/v1/test/clock",
                                       status="200")), 1, self.text)
        # Reads at debug (this server runs with --log-level debug).
        track = self.find("call", method="GET", route="/v1/track/:code", principal="-")
        self.assertEqual(len(track), 1, self.text)
        self.assertEqual(track[0]["level"], "debug")
        self.assertTrue(self.find("call", method="GET", route="/v1/requests/:id/events",
                                  status="200", level="debug"), self.text)

    def test_f_webhook_attempts(self):
        fails = self.find("webhook attempt failed", receiver="agency:" + self.w.A)
        self.assertIn((self.rid2, "SlaBreached"), self.deliveries)
        n = len(self.deliveries)
        self.assertGreaterEqual(len(fails), 2 * n, self.text)  # >= 2 attempts each
        for d in fails:
            self.assertEqual(d["url"], self.hook_origin, d["_raw"])
            self.assertEqual(d["error"], "HTTP 500", d["_raw"])
            self.assertRegex(d["delivery"], r"^d-[0-9a-f]+$", d["_raw"])
            self.assertIn(d["request"], (self.rid1, self.rid2), d["_raw"])
            self.assertIn((d["request"], d["type"]), self.deliveries, d["_raw"])
            self.assertRegex(d["attempt"], r"^[1-9]\d*$", d["_raw"])
            if d["next_retry"] == "none":
                self.assertEqual(d["level"], "error", d["_raw"])
            else:
                self.assertRegex(d["next_retry"], TIME_RE, d["_raw"])
                self.assertEqual(d["level"], "warn", d["_raw"])
        given_up = [d for d in fails if d["next_retry"] == "none"]
        self.assertEqual(sorted((d["request"], d["type"]) for d in given_up),
                         sorted(self.deliveries), self.text)
        first = [d for d in fails if d["attempt"] == "1"]
        self.assertEqual(len(first), n, self.text)

    def test_g_lookup_attempts(self):
        a = self.find("lookup attempt failed", request=self.rid3, step="identity")
        self.assertEqual([(d["attempt"], d["of"], d["level"]) for d in a],
                         [("1", "2", "warn"), ("2", "2", "error")], self.text)
        for d in a:
            self.assertEqual(d["url"], self.reg_origin, d["_raw"])
            self.assertEqual(d["error"], "HTTP 500", d["_raw"])
        self.assertEqual(a[0]["next_retry_ms"], "500")
        self.assertEqual(a[1]["next_retry_ms"], "-1")
        f = self.find("lookup failed", request=self.rid3, step="identity", attempts="2")
        self.assertEqual(len(f), 1, self.text)
        self.assertEqual(f[0]["error"], "attempt 2: HTTP 500")

    def test_h_breach(self):
        b = self.find("sla breached", request=self.rid2, step="review", agency=self.w.A,
                      action="notify")
        self.assertEqual(len(b), 1, self.text)
        self.assertRegex(b[0]["due_at"], TIME_RE)
        self.assertEqual(self.find("sla breached", request=self.rid1), [], self.text)

    def test_i_shutdown(self):
        self.assertEqual(len(self.find("stopping", signal="SIGTERM")), 1, self.text)
        st = self.find("stopped")
        self.assertEqual(len(st), 1, self.text)
        self.assertGreaterEqual(int(st[0]["events"]), self.size)
        # The last line of the run.
        self.assertEqual(self.lines[-1][1]["msg"], "stopped", self.text)


class TestLevels(unittest.TestCase):

    def run_one(self, extra):
        srv = Server(extra_args=extra)
        try:
            srv.start()
            plat = srv.client(srv.admin_token())
            r = plat.put("/v1/calendars/c-" + uniq("x").split("-")[1],
                         {"utc_offset": "+07:00", "workdays": ["mon"],
                          "hours": ["08:30", "16:30"], "holidays": []})
            self.assertEqual(r.status, 201, r)
            self.assertEqual(plat.get("/v1/principals").status, 200)
            self.assertEqual(srv.stop(), 0, srv.stderr_tail())
            return server_lines(srv)[1]
        finally:
            srv.cleanup()

    def test_default_info_drops_reads(self):
        lines = [d for _, d in self.run_one([])]
        self.assertTrue([d for d in lines if d["msg"] == "listening"])
        calls = [d for d in lines if d["msg"] == "call"]
        self.assertEqual([(d["method"], d["route"], d["status"]) for d in calls],
                         [("PUT", "/v1/calendars/:id", "201")], lines)
        self.assertFalse([d for d in lines if d["level"] == "debug"])

    def test_warn_drops_info(self):
        lines = [d for _, d in self.run_one(["--log-level", "warn"])]
        self.assertEqual([d for d in lines if d["level"] in ("debug", "info")], [], lines)

    def test_unknown_level_is_a_usage_error(self):
        for bad in ("verbose", "INFO", ""):
            p = subprocess.run([OSSE_BIN, "serve", "--data", "/nonexistent/osse-logs",
                                "--listen", "127.0.0.1:0", "--log-level", bad],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            self.assertEqual(p.returncode, 2, (bad, p))
            self.assertEqual(p.stdout, b"", bad)
            self.assertIn(b"--log-level", p.stderr, bad)
        p = subprocess.run([OSSE_BIN, "serve", "--data", "/nonexistent/osse-logs",
                            "--log-level"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        self.assertEqual(p.returncode, 2, p)


COMMANDS = ["serve", "validate", "replay", "export", "verify", "token", "version", "help"]
# As `osse help serve` spells them (the test clock's with its TIME).
SERVE_FLAGS = ["--data", "--listen", "--workflows", "--origin", "--key-store", "--master-key",
               "--test-clock[=TIME]", "--log-level", "--allow-private-urls"]


def osse(*args):
    return subprocess.run([OSSE_BIN] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=30)


class TestHelp(unittest.TestCase):

    def test_help_on_stdout_exit_0(self):
        for args in (["--help"], ["-h"], ["help"]):
            p = osse(*args)
            self.assertEqual(p.returncode, 0, (args, p))
            self.assertEqual(p.stderr, b"", args)
            out = p.stdout.decode()
            self.assertTrue(out.startswith("usage"), (args, out))
            for c in COMMANDS:
                self.assertIn("osse " + c, out, (args, c))

    def test_help_of_each_command(self):
        for c in COMMANDS:
            p = osse("help", c)
            self.assertEqual(p.returncode, 0, (c, p))
            self.assertEqual(p.stderr, b"", c)
            out = p.stdout.decode()
            self.assertTrue(out.startswith("usage: osse " + c), (c, out))
            if c not in ("help", "version", "token"):
                for flag in ("--help", "-h"):
                    q = osse(c, flag)
                    self.assertEqual((q.returncode, q.stdout, q.stderr), (0, p.stdout, b""),
                                     (c, flag))
        serve = osse("help", "serve").stdout.decode()
        for flag in SERVE_FLAGS:
            # Each flag on a line of its own, with its explanation.
            self.assertRegex(serve, r"(?m)^  %s\S* +\S.*$" % re.escape(flag), flag)
        for c, flags in (("replay", ["--data", "--key", "--recheck"]),
                         ("export", ["--data", "--from", "--to"]),
                         ("verify", ["--key"]), ("validate", ["--json"]),
                         ("token", ["--data"])):
            out = osse("help", c).stdout.decode()
            for flag in flags:
                self.assertRegex(out, r"(?m)^  %s\S* +\S.*$" % re.escape(flag), (c, flag))

    def test_bad_command_lines_exit_2(self):
        for args in ([], ["bogus"], ["help", "bogus"], ["serve", "--bogus"],
                     ["serve", "--data"], ["replay"], ["verify", "x"], ["version", "extra"]):
            p = osse(*args)
            self.assertEqual(p.returncode, 2, (args, p))
            self.assertEqual(p.stdout, b"", args)
            self.assertIn(b"usage", p.stderr, args)
        # A bad flag shows its own command's usage.
        p = osse("serve", "--bogus")
        self.assertIn(b"usage: osse serve", p.stderr)
        self.assertIn(b"--log-level", p.stderr)


if __name__ == "__main__":
    main()
