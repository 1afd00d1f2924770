"""test_journey.py: examples/journey.sh, the demo of issue 11, runs as a
newcomer would run it after the README's run command, and what it shows is
true.

- osse is started as the README's run command starts it (`--workflows
  examples/workflows` on a fresh data folder) but on a free port and with
  `--test-clock=2030-01-07T09:00:00+07:00`, a fixed instant (a Monday at
  09:00 in Bangkok), so that nothing depends on today's date;
- the script runs with OSSE_URL, OSSE_TOKEN_FILE and DOPA_PORT (a free port
  for its fake registry, not 8081, which another run may hold) pointing at
  this server, exits 0 and writes nothing to stderr;
- what it printed is checked independently: the licence number it names is
  in the public registry (valid, with the public fields of the form it
  sent), it said "signature OK", the request it walked is completed, and the
  fake registry was really asked;
- then `osse replay --data` on the folder prints the live digest
  (`GET /v1/admin/digest`) as its last line and `--recheck` reports
  "recheck: 0 difference(s)".

Python standard library only.
"""

import base64
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import OSSE_BIN, Server, free_port, main  # noqa: E402

SRC = os.path.abspath(os.environ.get("OSSE_SRC") or
                      os.path.join(os.path.dirname(__file__), "..", ".."))
CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"



class TestJourney(unittest.TestCase):

    def setUp(self):
        self.server = Server(workflows_dir=os.path.join(SRC, "examples", "workflows"),
                             extra_args=[CLOCK]).start()

    def tearDown(self):
        self.server.stop()
        self.server.cleanup()

    def run_journey(self):
        env = dict(os.environ, OSSE_URL="http://127.0.0.1:%d" % self.server.port,
                   OSSE_TOKEN_FILE=os.path.join(self.server.data_dir, "admin.token"),
                   DOPA_PORT=str(free_port()))
        p = subprocess.run(["bash", os.path.join(SRC, "examples", "journey.sh")], cwd=SRC,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, "journey.sh failed (exit %d)\nstdout:\n%s\nstderr:\n%s"
                         % (p.returncode, out, err))
        self.assertEqual(err, "", "journey.sh wrote to stderr: %s" % err)
        return out

    def test_journey_to_a_verified_licence(self):
        out = self.run_journey()
        m = re.search(r"^journey done: request (r-[0-9a-f]{20}), tracking code (\w+), "
                      r"licence (\S+)$", out, re.M)
        self.assertIsNotNone(m, "no closing line:\n" + out)
        rid, code, number = m.groups()
        self.assertIn("\nsignature OK", out)
        self.assertIn("signature refused", out)
        # Year 2030 in the Buddhist era, the first licence of the workflow.
        self.assertEqual(number, "TP-2573-0000001", out)

        anyone = self.server.client()
        r = anyone.get("/v1/public/licences/" + number)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["number"], r.json["workflow"], r.json["status"]),
                         (number, "commercial-registration", "valid"), r.json)
        self.assertEqual(r.json["fields"], {"trade_name": "Baan Somchai Noodles",
                                            "business_type": "restaurant",
                                            "district": "bang-rak"}, r.json)
        # The document the script showed (and verified) is the registry's.
        payload = r.json["jws"].split(".")[1]
        doc = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
        self.assertIn("\n  document: %s\n" % doc, out)
        r = anyone.get("/v1/track/" + code)
        self.assertEqual((r.status, r.json["status"], r.json["licence"]["number"]),
                         (200, "completed", number), r)
        # Each party's line is there: the inbox, the registry's question,
        # the QR read by the gateway, the CSV row.
        for want in ("district-office: GET /v1/agencies/district-office/tasks -> registrar of "
                     + rid,
                     "POST /dopa/lookup (request %s, step identity)" % rid,
                     "gateway: QR read: biller 099400016520001",
                     "\n  %s,commercial-registration," % number):
            self.assertIn(want, out)

        plat = self.server.client(self.server.admin_token())
        evs = plat.get("/v1/requests/%s/events" % rid).json["events"]
        types = [e["type"] for e in evs]
        for t in ("LinkageCompleted", "TaskDecided", "PaymentDue", "PaymentReceived",
                  "LicenceIssued", "RequestCompleted"):
            self.assertIn(t, types)
        due = [e for e in evs if e["type"] == "PaymentDue"][0]["data"]
        self.assertIn("099400016520001", due["qr"], due)

        live = plat.get("/v1/admin/digest").json["digest"]
        p = subprocess.run([OSSE_BIN, "replay", "--data", self.server.data_dir],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.strip().splitlines()[-1], live, p.stdout)
        p = subprocess.run([OSSE_BIN, "replay", "--data", self.server.data_dir, "--recheck"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("recheck: 0 difference(s)", p.stdout.splitlines(), p.stdout)
        self.assertEqual(p.stdout.strip().splitlines()[-1], live, p.stdout)

    def test_a_second_run_on_the_same_server(self):
        """Run twice, as a newcomer does: the second run finds the biller id
        set, points dopa at its own registry's new port, and gets the next
        licence number."""
        self.run_journey()
        out = self.run_journey()
        self.assertIn("licence TP-2573-0000002\n", out)
        self.assertIn("collects fees as PromptPay biller 099400016520001", out)


if __name__ == "__main__":
    main()
