"""test_package.py: the Debian package (issue 14): what `cpack -G DEB` makes
of the tree, and that what it installs works.

The package is built here from the source tree, as the README says, in a
folder of its own: configured with -DCMAKE_INSTALL_PREFIX=/usr
-DOSSE_UI_DIR=/usr/share/osse/ui (the paths compiled into the binary and
written into the unit are the installed ones; the test's own build is not
configured so, and packaging/cpack_check.cmake refuses to package it), only
the binary and the man page built, then `cpack -G DEB`. On two cores that
is about a minute. Then:

- `dpkg-deb -c` lists /usr/bin/osse, the man page, the unit, the
  environment file, the empty /etc/osse/workflows, README.md and every
  docs/*.md, every file of examples/ and (when ui/ exists) every file of ui/
  under /usr/share/osse/ui; nothing under /usr/local or /var.
- `dpkg-deb -f` fields: the name, the project's version (`osse version` of
  the packaged binary), the machine's architecture, the maintainer, the
  section, a Depends from dpkg-shlibdeps (libc6, libuv1, librocksdb...);
  conffiles names /etc/default/osse; the maintainer scripts parse (sh -n).
- `systemd-analyze verify --root=ROOT osse.service` accepts the unit with
  not a word of warning: ROOT is the package extracted with `dpkg-deb -x`
  plus a copy of the machine's own units (the unit wants
  network-online.target and multi-user.target), so that verify checks the
  packaged ExecStart binary and, with MANPATH in ROOT, that `man osse`
  finds the packaged page. The unit has the hardening it promises.
- The packaged man page renders with `groff -man -Tutf8 -ww` without a
  warning and names every command of `osse help` and every flag of each
  `osse help CMD`.
- The packaged binary, started with the unit's own ExecStart (its paths
  moved into a temp root, the default environment file's values, and
  --test-clock=TIME, plus --allow-private-urls for a local webhook
  receiver), serves a real journey (agencies, one with a webhook named by
  host name, a workflow, a submission, decisions, a webhook delivered) and
  stops on SIGTERM with exit 0; it runs under
  the kernel's memory-deny-write-execute (prctl PR_SET_MDWE, what the
  unit's MemoryDenyWriteExecute= enforces with seccomp) and under strace,
  and every system call it made is in the unit's SystemCallFilter
  (@system-service, as `systemd-analyze syscall-filter` expands it) and
  every socket it opened is of a family RestrictAddressFamilies= allows.
  admin.token and master.key land 0600 in the state folders.

Needs dpkg-dev (dpkg-shlibdeps), systemd (systemd-analyze), groff-base and
strace: tests/deps.sh installs them. Python standard library only.
"""

import ctypes
import gzip
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import READY_RE, Client, FailingReceiver, World, main  # noqa: E402

SRC = os.path.abspath(os.environ.get("OSSE_SRC") or
                      os.path.join(os.path.dirname(__file__), "..", ".."))
CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
UNIT = "usr/lib/systemd/system/osse.service"


def run(args, timeout=600, **kw):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, **kw)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def must(tc, args, **kw):
    rc, out, err = run(args, **kw)
    if rc != 0:
        raise AssertionError("%s: exit %d\nstdout:\n%s\nstderr:\n%s" %
                             (" ".join(args), rc, out[-4000:], err[-4000:]))
    return out


def tree_files(top):
    """Every file under top, as paths relative to it."""
    out = []
    for d, dirs, files in os.walk(top):
        dirs[:] = [x for x in dirs if x not in ("__pycache__", "node_modules")]
        for f in files:
            out.append(os.path.relpath(os.path.join(d, f), top))
    return sorted(out)


def help_commands(binary):
    _, out, _ = run([binary, "help"], timeout=30)
    return re.findall(r"(?m)^  osse (\S+)", out)


def help_flags(binary, cmd):
    _, out, _ = run([binary, "help", cmd], timeout=30)
    return re.findall(r"(?m)^  (\S+)(?: \S+)? {2,}\S", out)


def syscall_group(name, seen=None):
    """The system calls of a systemd group (@name), nested groups expanded."""
    seen = seen if seen is not None else set()
    if name in seen:
        return set()
    seen.add(name)
    rc, out, err = run(["systemd-analyze", "syscall-filter", name], timeout=60)
    if rc != 0:
        raise AssertionError("systemd-analyze syscall-filter %s: %s" % (name, err))
    calls = set()
    for line in out.splitlines()[1:]:
        w = line.strip()
        if not w or w.startswith("#"):
            continue
        calls |= syscall_group(w, seen) if w.startswith("@") else {w}
    return calls


class PackageServer:
    """The adapter World wants: a data folder, a port, a client."""

    def __init__(self, data_dir, port):
        self.data_dir, self.port = data_dir, port

    def admin_token(self):
        with open(os.path.join(self.data_dir, "admin.token")) as f:
            return f.read().strip()

    def client(self, token=None, keepalive=False):
        return Client(self.port, token, keepalive)


class TestPackage(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="osse-pkg-")
        build = os.path.join(cls.tmp, "build")
        os.mkdir(build)
        steps = [
            ["cmake", "-S", SRC, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
             "-DCMAKE_INSTALL_PREFIX=/usr", "-DOSSE_UI_DIR=/usr/share/osse/ui",
             # cpack builds nothing more than the binary and its man page.
             "-DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON"],
            ["nice", "-n", "10", "cmake", "--build", build, "-j2", "--target", "osse",
             "osse_man"],
            ["cpack", "-G", "DEB"],
        ]
        for s in steps:
            must(None, s, cwd=build)
        debs = [f for f in os.listdir(build) if f.endswith(".deb")]
        assert len(debs) == 1, debs
        cls.deb = os.path.join(build, debs[0])
        cls.root = os.path.join(cls.tmp, "root")
        must(None, ["dpkg-deb", "-x", cls.deb, cls.root])
        cls.bin = os.path.join(cls.root, "usr", "bin", "osse")
        _, out, _ = run(["dpkg-deb", "-c", cls.deb])
        # "drwxr-xr-x root/root 0 2026-... ./usr/bin/" -> "/usr/bin"
        cls.listing = {line.split(None, 5)[5].lstrip(".").rstrip("/") or "/"
                       for line in out.splitlines() if line.strip()}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def field(self, name):
        return must(self, ["dpkg-deb", "-f", self.deb, name]).strip()

    # -- the listing -------------------------------------------------------

    def test_listing(self):
        want = ["/usr/bin/osse", "/usr/share/man/man1/osse.1.gz", "/" + UNIT,
                "/etc/default/osse", "/etc/osse/workflows", "/usr/share/doc/osse/README.md"]
        want += ["/usr/share/doc/osse/" + f for f in os.listdir(os.path.join(SRC, "docs"))
                 if f.endswith(".md")]
        examples = tree_files(os.path.join(SRC, "examples"))
        self.assertIn("workflows/restaurant-license.yaml", examples)
        want += ["/usr/share/doc/osse/examples/" + f for f in examples]
        if os.path.isdir(os.path.join(SRC, "ui")):
            ui = tree_files(os.path.join(SRC, "ui"))
            self.assertIn("index.html", ui)
            want += ["/usr/share/osse/ui/" + f for f in ui]
        for path in want:
            self.assertIn(path, self.listing, "the package lacks " + path)
        for path in self.listing:
            self.assertFalse(path.startswith(("/usr/local", "/var", "/tmp", "/home")), path)
        mode = os.stat(self.bin).st_mode
        self.assertTrue(mode & stat.S_IXOTH, oct(mode))
        # The binary is the one the package's configure made: its pages are
        # looked for where the package puts them, not in the source tree.
        with open(self.bin, "rb") as f:
            self.assertTrue((SRC + "/ui").encode() not in f.read(),
                            "the packaged binary names the source tree's ui/")

    def test_control_fields(self):
        _, version, _ = run([self.bin, "version"], timeout=30)
        self.assertRegex(version, r"^osse \d+\.\d+\.\d+\n$")
        self.assertEqual(self.field("Package"), "osse")
        self.assertEqual(self.field("Version"), version.split()[1] + "-1")
        arch = must(self, ["dpkg", "--print-architecture"]).strip()
        self.assertEqual(self.field("Architecture"), arch)
        self.assertEqual(self.field("Section"), "net")
        self.assertRegex(self.field("Maintainer"), r"^[^<>]+ <[^@<>]+@[^@<>]+>$")
        desc = self.field("Description").splitlines()
        self.assertEqual(desc[0], "one-stop-service workflow engine")
        self.assertIn(" .", desc, "the long description has its paragraphs")
        for line in desc[1:]:
            self.assertRegex(line, r"^ \S", "an extended description line: %r" % line)
        depends = [d.strip().split()[0] for d in self.field("Depends").split(",")]
        for lib in ("libc6", "libuv1", "libsodium23", "libjansson4", "libcurl4",
                    "init-system-helpers"):
            self.assertIn(lib, depends)
        self.assertTrue(any(d.startswith("librocksdb") for d in depends), depends)
        ctl = os.path.join(self.tmp, "control")
        must(self, ["dpkg-deb", "-e", self.deb, ctl])
        with open(os.path.join(ctl, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/default/osse"])
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(ctl, script)
            self.assertTrue(os.stat(path).st_mode & stat.S_IXUSR, script)
            must(self, ["sh", "-n", path])
        with open(os.path.join(ctl, "postinst")) as f:
            postinst = f.read()
        # Not enabled on install: the admin sets the listen address first.
        self.assertNotIn("deb-systemd-helper enable", postinst)
        with open(os.path.join(ctl, "postrm")) as f:
            self.assertNotRegex(f.read(), r"rm -r[f ]", "purge keeps the log and its keys")

    # -- the unit ----------------------------------------------------------

    def unit_text(self):
        with open(os.path.join(self.root, UNIT)) as f:
            return f.read()

    def test_unit_verifies(self):
        vroot = os.path.join(self.tmp, "verify-root")
        shutil.copytree(self.root, vroot, symlinks=True)
        units = os.path.join(vroot, "usr", "lib", "systemd", "system")
        # The machine's units (targets the unit names), beside the packaged one.
        host_units = "/usr/lib/systemd/system"
        self.assertTrue(os.path.isdir(host_units), "systemd is not installed")
        for name in os.listdir(host_units):
            dst = os.path.join(units, name)
            if name != "osse.service" and not os.path.lexists(dst):
                src = os.path.join(host_units, name)
                if os.path.islink(src):
                    os.symlink(os.readlink(src), dst)
                elif os.path.isdir(src):
                    shutil.copytree(src, dst, symlinks=True)
                else:
                    shutil.copy(src, dst)
        env = dict(os.environ, MANPATH=os.path.join(vroot, "usr", "share", "man"))
        rc, out, err = run(["systemd-analyze", "verify", "--root=" + vroot, "osse.service"],
                           env=env, timeout=120)
        self.assertEqual((rc, out + err), (0, ""), "systemd-analyze verify complains")
        # And it does complain when the packaged binary is missing.
        os.unlink(os.path.join(vroot, "usr", "bin", "osse"))
        rc, out, err = run(["systemd-analyze", "verify", "--root=" + vroot, "osse.service"],
                           env=env, timeout=120)
        self.assertIn("/usr/bin/osse", out + err)

    def test_unit_hardening(self):
        text = self.unit_text()
        have = {}
        for line in text.splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                have.setdefault(k.strip(), []).append(v.strip())
        want = {
            "Type": "exec", "DynamicUser": "yes", "StateDirectory": "osse osse-keys",
            "UMask": "0077", "ProtectSystem": "strict", "ProtectHome": "yes",
            "NoNewPrivileges": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
            "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
            "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces": "yes",
            "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
            "SystemCallFilter": "@system-service", "CapabilityBoundingSet": "",
            "Restart": "on-failure", "EnvironmentFile": "-/etc/default/osse",
            "WantedBy": "multi-user.target",
        }
        for k, v in want.items():
            self.assertEqual(have.get(k), [v], k)
        self.assertNotIn("User", have, "DynamicUser= makes the user")
        exe = have["ExecStart"][0].split()
        self.assertEqual(exe[:2], ["/usr/bin/osse", "serve"])
        for flag, val in (("--data", "/var/lib/osse"), ("--workflows", "/etc/osse/workflows"),
                          ("--key-store", "/var/lib/osse-keys/keys"),
                          ("--master-key", "/var/lib/osse-keys/master.key"),
                          ("--listen", "${OSSE_LISTEN}")):
            self.assertEqual(exe[exe.index(flag) + 1], val, flag)

    # -- the man page ------------------------------------------------------

    def test_man_page(self):
        with gzip.open(os.path.join(self.root, "usr/share/man/man1/osse.1.gz")) as f:
            roff = f.read()
        # The packaged page is the one `osse help --man` prints.
        p = subprocess.run([self.bin, "help", "--man"], stdout=subprocess.PIPE, timeout=30)
        self.assertEqual((p.returncode, p.stdout), (0, roff))
        for width in ("80n", "60n"):
            p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-rLL=" + width],
                               input=roff, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
            self.assertEqual((p.returncode, p.stderr.decode()), (0, ""), width)
        text = re.sub(r".\x08", "", p.stdout.decode("utf-8"))  # overstrikes out
        # groff renders \- as U+2212 in UTF-8 and may break at hyphens.
        text = text.replace("\u2212", "-").replace("\u2010", "-")
        self.assertIn("OSSE(1)", text)
        cmds = help_commands(self.bin)
        self.assertGreaterEqual(len(cmds), 9, cmds)
        for c in cmds:
            self.assertRegex(text, r"(?m)^   %s$" % re.escape(c), "the page lacks " + c)
            for flag in help_flags(self.bin, c):
                self.assertRegex(text, r"(?m)^       %s(\s|$)" % re.escape(flag),
                                 "the page lacks %s %s" % (c, flag))

    # -- the packaged binary, started as the unit starts it ----------------

    def test_serves_as_the_unit_starts_it(self):
        rc, out, _ = run([self.bin, "--help"], timeout=30)
        self.assertEqual(rc, 0)
        self.assertIn("osse serve", out)
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
        if libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) < 0:
            self.skipTest("this kernel has no PR_SET_MDWE (Linux 6.3+)")

        def mdwe():
            if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
                os._exit(97)
            os.umask(0o077)

        # The kernel does refuse a writable and executable mapping so.
        probe = ("import mmap\ntry:\n    mmap.mmap(-1, 4096, prot=7)\nexcept OSError:\n"
                 "    raise SystemExit(3)\n")
        p = subprocess.run([sys.executable, "-c", probe], preexec_fn=mdwe, timeout=30)
        self.assertEqual(p.returncode, 3, "a W+X mapping under PR_SET_MDWE")
        p = subprocess.run([sys.executable, "-c", probe], timeout=30)
        self.assertEqual(p.returncode, 0, "a W+X mapping without it")
        vroot = os.path.join(self.tmp, "run-root")
        for d in ("var/lib/osse", "var/lib/osse-keys", "etc/osse/workflows"):
            os.makedirs(os.path.join(vroot, d), mode=0o700)
        # An admin copies the examples to /etc/osse/workflows.
        ex = os.path.join(self.root, "usr/share/doc/osse/examples/workflows")
        for f in os.listdir(ex):
            shutil.copy(os.path.join(ex, f), os.path.join(vroot, "etc/osse/workflows"))
        # ExecStart with the environment file's values, paths moved to vroot.
        env_vals = {}
        with open(os.path.join(self.root, "etc/default/osse")) as f:
            for line in f:
                m = re.match(r'^(\w+)="?([^"]*)"?$', line.strip())
                if m:
                    env_vals[m.group(1)] = m.group(2)
        self.assertEqual(env_vals.get("OSSE_LISTEN"), "127.0.0.1:8080")
        exec_start = re.search(r"(?m)^ExecStart=(.*)$", self.unit_text()).group(1)
        args = []
        for a in exec_start.split():
            if a == "${OSSE_LISTEN}":
                args.append("127.0.0.1:0")  # the file's port may be taken here
            elif a == "$OSSE_FLAGS":
                # As an admin could set it: the webhook receiver below is on
                # this machine.
                args += env_vals.get("OSSE_FLAGS", "").split() + ["--allow-private-urls"]
            elif a == "/usr/bin/osse":
                args.append(self.bin)
            elif a.startswith(("/var/", "/etc/")):
                args.append(vroot + a)
            else:
                args.append(a)
        args.append(CLOCK)
        serve_help = run([self.bin, "help", "serve"], timeout=30)[1]
        if "--ui-dir" in serve_help and os.path.isdir(os.path.join(self.root, "usr/share/osse/ui")):
            args += ["--ui-dir", os.path.join(self.root, "usr/share/osse/ui")]
        trace = os.path.join(self.tmp, "strace.txt")

        errlog = open(os.path.join(self.tmp, "serve.err"), "wb")
        proc = subprocess.Popen(["strace", "-f", "-qq", "-o", trace] + args,
                                stdout=subprocess.PIPE, stderr=errlog, stdin=subprocess.DEVNULL,
                                preexec_fn=mdwe)
        errlog.close()
        got = {}
        ready = threading.Event()

        def read_ready():
            for line in iter(proc.stdout.readline, b""):
                m = READY_RE.search(line)
                if m and "port" not in got:
                    got["port"] = int(m.group(2))
                    ready.set()
            ready.set()

        threading.Thread(target=read_ready, daemon=True).start()
        rec = FailingReceiver()
        rec.status = 200
        try:
            ready.wait(120)
            with open(os.path.join(self.tmp, "serve.err"), "rb") as f:
                log = f.read().decode("utf-8", "replace")
            self.assertIn("port", got, "the packaged osse did not start:\n" + log[-3000:])
            w = World(PackageServer(vroot + "/var/lib/osse", got["port"]))
            # A webhook by name: libcurl's resolver and sockets run too.
            url = "http://localhost:%d/hook" % rec.port
            r = w.plat.put("/v1/agencies/" + w.A, {"name": "Agency A", "webhook_url": url})
            self.assertEqual(r.status, 200, r)
            wid = w.workflow()
            rid = w.submit(wid)["id"]
            for step in ("intake", "review_b", "review_c", "final"):
                w.decide(rid, step, "approve")
            self.assertEqual(w.view(rid)["status"], "completed")
            r = w.plat.get("/v1/workflows/restaurant-license")
            self.assertEqual(r.status, 200, "the example copied to /etc/osse/workflows")
            for _ in range(300):
                if rec.count():
                    break
                time.sleep(0.1)
            self.assertGreater(rec.count(), 0, "a webhook delivered")
        finally:
            # To osse, not to strace (which would detach and leave it running);
            # strace exits with osse's status.
            with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
                children = [int(x) for x in f.read().split()]
            for pid in children:
                os.kill(pid, signal.SIGTERM)
            try:
                rc = proc.wait(60)
            except subprocess.TimeoutExpired:
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
                proc.kill()
                rc = proc.wait(60)
            proc.stdout.close()
            rec.close()
        self.assertEqual(children and rc, 0, "SIGTERM stops osse with exit 0")
        for path in ("var/lib/osse/admin.token", "var/lib/osse-keys/master.key"):
            mode = stat.S_IMODE(os.stat(os.path.join(vroot, path)).st_mode)
            self.assertEqual(mode, 0o600, path)
        unit = self.unit_text()
        allowed = set()
        for w in re.search(r"(?m)^SystemCallFilter=(.*)$", unit).group(1).split():
            allowed |= syscall_group(w) if w.startswith("@") else {w}
        self.assertIn("openat", syscall_group("@system-service"), "the groups expand")
        families_allowed = set(
            re.search(r"(?m)^RestrictAddressFamilies=(.*)$", unit).group(1).split())
        used, families = set(), set()
        with open(trace) as f:
            for line in f:
                m = re.match(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]", line)
                if m:
                    used.add(m.group(1))
                m = re.match(r"^\d+\s+socket\((\w+)", line)
                if m:
                    families.add(m.group(1))
        self.assertIn("epoll_wait", used, "strace saw the loop")
        self.assertEqual(sorted(used - allowed), [],
                         "system calls outside SystemCallFilter=@system-service")
        self.assertIn("AF_INET", families)
        self.assertEqual(sorted(families - families_allowed), [],
                         "socket families outside RestrictAddressFamilies=")


if __name__ == "__main__":
    main()
