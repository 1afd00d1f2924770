"""test_ui.py: the pages under /ui/ (SPEC §13, §1) as served, over real HTTP
and in a real browser.

One server with `--test-clock=TIME` for the class, serving the tree's ui/.

What is checked:
- /ui/ (and /ui) is the index page; clean addresses map to their page
  (/ui/track?code=..., /ui/services, /ui/services/<id>, /ui/registry,
  /ui/registry/<number>, ...); assets by their name with their type
  (text/html, text/css, text/javascript, image/svg+xml), no token needed
  (and a wrong one does not matter);
- every answer under /ui/, a 404 too, carries the Content-Security-Policy,
  X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer and
  Cache-Control: no-cache;
- nothing outside the folder is reachable: `..` (plain or percent-encoded),
  absolute paths, a page's .html name, names of other extensions, upper
  case, a symlink or a subfolder in the folder: each is a 404 in the API's
  error shape; other methods are 405;
- --ui-dir of a folder that is not there stops the start (exit 1);
- a token in the fragment (#token=...) is kept in the tab's sessionStorage
  and taken off the address (common.js), never put in localStorage or a
  cookie;
- no page holds an inline script, inline style or on* handler (the CSP
  would block them);
- in Chromium, the index loads with no console error at desktop and phone
  size and links every page of SPEC §13.
"""

import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import OSSE_BIN, Server, main, run_osse  # noqa: E402,F401
from ui_browser import SRC, open_page, thai_font_used  # noqa: E402

START = "2030-01-07T09:00:00+07:00"
UI_DIR = os.path.join(SRC, "ui")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")

PAGES = ["/ui/track", "/ui/services", "/ui/registry", "/ui/inbox", "/ui/audit",
         "/ui/dashboard"]


class UiServing(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["--test-clock=" + START]).start()
        cls.anon = cls.server.client("")

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        cls.server.cleanup()
        assert rc == 0, "osse exited with %s" % rc

    def assert_page_headers(self, r):
        self.assertEqual(r.headers.get("content-security-policy"), CSP, r.headers)
        self.assertEqual(r.headers.get("x-content-type-options"), "nosniff")
        self.assertEqual(r.headers.get("referrer-policy"), "no-referrer")
        self.assertEqual(r.headers.get("cache-control"), "no-cache")

    def file(self, name):
        with open(os.path.join(UI_DIR, name), "rb") as f:
            return f.read()

    def test_index_and_clean_addresses(self):
        for path in ("/ui/", "/ui"):
            r = self.anon.get(path)
            self.assertEqual(r.status, 200, (path, r))
            self.assertEqual(r.headers["content-type"], "text/html; charset=utf-8")
            self.assertEqual(r.body, self.file("index.html"))
            self.assert_page_headers(r)
        present = sorted(f for f in os.listdir(UI_DIR) if f.endswith(".html"))
        for page in present:
            name = page[:-5]
            paths = ["/ui/" + name, "/ui/%s/" % name]
            if name == "track":
                paths.append("/ui/track?code=ABCD-1234")
            if name in ("services", "registry"):
                paths += ["/ui/%s/some-id" % name, "/ui/%s/%%E0%%B8%%81-1" % name]
            for path in paths:
                r = self.anon.get(path)
                self.assertEqual(r.status, 200, (path, r))
                self.assertEqual(r.body, self.file(page), path)
                self.assertEqual(r.headers["content-type"], "text/html; charset=utf-8")
                self.assert_page_headers(r)

    def test_assets_have_their_types(self):
        for name, ctype in (("style.css", "text/css; charset=utf-8"),
                            ("common.js", "text/javascript; charset=utf-8"),
                            ("favicon.svg", "image/svg+xml")):
            r = self.anon.get("/ui/" + name)
            self.assertEqual(r.status, 200, (name, r))
            self.assertEqual(r.headers["content-type"], ctype)
            self.assertEqual(r.body, self.file(name))
            self.assert_page_headers(r)

    def test_no_token_needed(self):
        r = self.server.client("not-a-token").get("/ui/style.css")
        self.assertEqual(r.status, 200, r)

    def test_nothing_outside_the_folder(self):
        bad = ["/ui/../CMakeLists.txt", "/ui/%2e%2e/CMakeLists.txt", "/ui/..%2fCMakeLists.txt",
               "/ui/%2e%2e%2fREADME.md", "/ui/%2Fetc%2Fpasswd", "/ui//etc/passwd",
               "/ui/index.html", "/ui/track.html", "/ui/ui.c", "/ui/STYLE.CSS",
               "/ui/no-such-page", "/ui/style.css/x", "/ui/services/a/b", "/ui/a/b",
               "/ui/.hidden.js", "/ui/common.js.map", "/ui/%00.js", "/ui/..",
               "/ui/" + "a" * 60]
        for path in bad:
            r = self.anon.get(path)
            self.assertEqual(r.status, 404, (path, r))
            self.assertEqual(r.headers["content-type"], "application/json", path)
            self.assertIn(r.error_code, ("not_found",), (path, r))
            self.assertNotIn(b"cmake_minimum_required", r.body)
            self.assertNotIn(b"root:", r.body)

    def test_404_page_has_the_page_headers(self):
        r = self.anon.get("/ui/no-such-page")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.error_code, "not_found")
        self.assert_page_headers(r)

    def test_other_methods(self):
        r = self.anon.post("/ui/track", {})
        self.assertEqual(r.status, 405, r)
        self.assertIn("GET", r.headers.get("allow", ""))

    def test_no_inline_script_or_style(self):
        for name in os.listdir(UI_DIR):
            if not name.endswith(".html"):
                continue
            text = self.file(name).decode()
            self.assertNotRegex(text, r"<script(?![^>]*\bsrc=)[^>]*>", name)
            self.assertNotRegex(text, r"<style", name)
            self.assertNotRegex(text, r"\sstyle\s*=", name)
            self.assertNotRegex(text, r"\son[a-z]+\s*=", name)
            self.assertNotRegex(text, r"javascript:", name)
        for name in os.listdir(UI_DIR):
            if name.endswith(".js"):
                text = self.file(name).decode()
                # No markup built from strings: what the server holds is text.
                self.assertNotRegex(text, r"\.innerHTML\s*=|insertAdjacentHTML|document\.write",
                                    name)
                self.assertNotRegex(text, r"\beval\(|new Function\(", name)

    def test_index_in_the_browser(self):
        base = "http://127.0.0.1:%d" % self.server.port
        out = open_page(base, "/ui/", "index", collect={
            "links": "[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))",
            "css": "getComputedStyle(document.body).fontFamily",
            "width": "document.documentElement.scrollWidth",
        }, fonts={"h1": "h1"})
        for size, page in out["pages"].items():
            for p in PAGES:
                self.assertIn(p, page["values"]["links"], (size, p))
            self.assertIn("บริการจุดเดียว", page["text"], size)
            self.assertIn("Loma", page["values"]["css"], size)
            # The Thai heading is drawn with a Thai font (not tofu boxes).
            self.assertTrue(thai_font_used(page["fonts"]["h1"]), (size, page["fonts"]))
        # Nothing wider than the phone: no sideways scrolling.
        self.assertLessEqual(out["pages"]["phone"]["values"]["width"], 390)
        for shot in out["shots"]:
            self.assertTrue(os.path.getsize(shot) > 1000, shot)

    def test_a_fragment_token_is_kept_for_the_tab_and_wiped_from_the_address(self):
        base = "http://127.0.0.1:%d" % self.server.port
        out = open_page(base, "/ui/track#token=tok-123&x=1", "token-fragment", collect={
            "href": "location.href",
            "stored": "sessionStorage.getItem('osse.token')",
            "local": "localStorage.length",
            "cookie": "document.cookie",
        }, sizes=("desktop",))
        v = out["pages"]["desktop"]["values"]
        self.assertEqual(v["stored"], "tok-123")
        self.assertNotIn("tok-123", v["href"])
        self.assertTrue(v["href"].endswith("/ui/track#x=1"), v["href"])
        self.assertEqual((v["local"], v["cookie"]), (0, ""))


class UiFolder(unittest.TestCase):
    """A folder of one's own: what in it is served and what is not."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="osse-ui-")
        self.server = None

    def tearDown(self):
        if self.server:
            self.server.stop()
            self.server.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_only_regular_files_of_the_fixed_names(self):
        def put(name, text):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        put("index.html", "<!doctype html><title>mine</title>")
        put("mine.js", "export const x = 1;\n")
        put("Upper.js", "upper")
        put("tool.sh", "echo no")
        put("notes.md", "# no")
        os.symlink("/etc/passwd", os.path.join(self.dir, "passwd.txt"))
        os.symlink(os.path.join(self.dir, "mine.js"), os.path.join(self.dir, "link.js"))
        os.mkdir(os.path.join(self.dir, "sub"))
        put(os.path.join("sub", "deep.js"), "deep")
        self.server = Server(extra_args=["--test-clock=" + START, "--ui-dir", self.dir]).start()
        c = self.server.client("")
        r = c.get("/ui/")
        self.assertEqual((r.status, r.body), (200, b"<!doctype html><title>mine</title>"))
        self.assertEqual(c.get("/ui/mine.js").status, 200)
        for path in ("/ui/Upper.js", "/ui/tool.sh", "/ui/notes.md", "/ui/passwd.txt",
                     "/ui/link.js", "/ui/sub", "/ui/sub/deep.js", "/ui/deep.js",
                     "/ui/track"):
            r = c.get(path)
            self.assertEqual(r.status, 404, (path, r))
            self.assertNotIn(b"root:", r.body)

    def test_a_missing_folder_stops_the_start(self):
        missing = os.path.join(self.dir, "nope")
        data = tempfile.mkdtemp(prefix="osse-it-")
        try:
            p = run_osse("serve", "--data", data, "--listen", "127.0.0.1:0",
                         "--test-clock=" + START, "--ui-dir", missing, check=False)
            self.assertEqual(p.returncode, 1, p)
            self.assertIn("ui_dir=", p.stderr.decode() if isinstance(p.stderr, bytes)
                          else p.stderr)
        finally:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
