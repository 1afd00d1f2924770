"""test_readme.py: the README takes a newcomer through a first journey, and
its links work in a plain clone (issue 9, point 13).

- The shell block under "## A first journey" is run as it stands (bash -e,
  pipefail) against a real `osse serve --workflows examples/workflows` on a fresh data
  folder: principals, a submission, two decisions, tracking, the events and
  an export verified offline. The block must end with exit 0 and print what
  it promises (awaiting_payment, the events, `ok:` from `osse verify`).
- Every relative link in README.md and docs/*.md names a file inside the
  repository (the contract link used to point outside it).
- docs/SPEC.md is the shared contract: where ../shared/SPEC.md exists beside
  the checkout, the two are equal byte for byte.

Python standard library only.
"""

import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import OSSE_BIN, Server, main  # noqa: E402

SRC = os.path.abspath(os.environ.get("OSSE_SRC") or
                      os.path.join(os.path.dirname(__file__), "..", ".."))


def read(path):
    with open(os.path.join(SRC, path), encoding="utf-8") as f:
        return f.read()


def journey_block():
    text = read("README.md")
    at = text.find("## A first journey")
    if at < 0:
        return None
    m = re.search(r"```sh\n(.*?)```", text[at:], re.S)
    return m.group(1) if m else None


class TestReadme(unittest.TestCase):

    def test_first_journey_runs(self):
        block = journey_block()
        self.assertIsNotNone(block, "README.md has no '## A first journey' with a ```sh block")
        srv = Server(workflows_dir=os.path.join(SRC, "examples", "workflows")).start()
        cwd = tempfile.mkdtemp(prefix="osse-readme-")
        try:
            env = dict(os.environ, OSSE="http://127.0.0.1:%d" % srv.port, DATA=srv.data_dir,
                       BIN=os.path.abspath(OSSE_BIN))
            p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            out = p.stdout.decode("utf-8", "replace")
            err = p.stderr.decode("utf-8", "replace")
            self.assertEqual(p.returncode, 0, "the journey failed (exit %d)\nstdout:\n%s\n"
                             "stderr:\n%s" % (p.returncode, out, err))
            self.assertEqual(err.strip(), "", "the journey wrote to stderr: %s" % err)
            for want in ("awaiting_payment", "RequestSubmitted", "TaskDecided", "PaymentDue",
                         "ok: "):
                self.assertIn(want, out, "the journey's output lacks %r:\n%s" % (want, out))
            self.assertNotIn("Somchai", out.split("awaiting_payment", 1)[1].split("\n")[1],
                             "tracking by code shows no personal data")
        finally:
            srv.stop()
            srv.cleanup()
            subprocess.run(["rm", "-rf", cwd])

    def test_citizen_id_helper(self):
        """`osse citizen-id` prints ids that pass the Thai check digit
        (checked here independently); `osse citizen-id ID` says whether."""
        for _ in range(50):
            p = subprocess.run([OSSE_BIN, "citizen-id"], stdout=subprocess.PIPE, timeout=30)
            cid = p.stdout.decode().strip()
            self.assertEqual(p.returncode, 0)
            self.assertRegex(cid, r"^[1-8][0-9]{12}$")
            check = (11 - sum(int(cid[i]) * (13 - i) for i in range(12)) % 11) % 10
            self.assertEqual(int(cid[12]), check, "bad check digit in %s" % cid)
            p = subprocess.run([OSSE_BIN, "citizen-id", cid], stdout=subprocess.PIPE, timeout=30)
            self.assertEqual((p.returncode, p.stdout.decode()), (0, cid + ": valid\n"))
        bad = "1101700230709"
        p = subprocess.run([OSSE_BIN, "citizen-id", bad], stdout=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 1, p)
        p = subprocess.run([OSSE_BIN, "citizen-id", "1", "2"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 2, p)

    def test_links_stay_in_the_repository(self):
        docs = ["README.md"] + ["docs/" + n for n in sorted(os.listdir(os.path.join(SRC, "docs")))
                                if n.endswith(".md")]
        bad = []
        for doc in docs:
            for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", read(doc)):
                if re.match(r"^[a-z]+:", target):
                    continue  # an absolute URL
                path = os.path.normpath(os.path.join(SRC, os.path.dirname(doc), target))
                if not path.startswith(SRC + os.sep) or not os.path.exists(path):
                    bad.append("%s -> %s" % (doc, target))
        self.assertEqual(bad, [], "links that do not resolve inside a plain clone: %s" % bad)

    def test_contract_copy_is_current(self):
        shared = os.path.join(SRC, "..", "shared", "SPEC.md")
        if not os.path.exists(shared):
            self.skipTest("no ../shared/SPEC.md beside this checkout")
        with open(shared, "rb") as f:
            want = f.read()
        with open(os.path.join(SRC, "docs", "SPEC.md"), "rb") as f:
            got = f.read()
        self.assertEqual(got, want, "docs/SPEC.md differs from ../shared/SPEC.md: copy it again")


if __name__ == "__main__":
    main()
