"""ui_browser.py: the integration tests' way into a real browser.

It runs `node tests/browser/<script>.js '<json>'` (Debian's chromium,
headless, through puppeteer-core: tests/browser/README.md) and hands back the
script's one JSON line. The generic script page.js opens a page at desktop
and phone size, runs a few steps (wait, fill, click), and reports each
size's text, HTML and collected values; it fails on any console error or
warning, uncaught error, failed request or 4xx/5xx answer the test did not
allow. Screenshots go to $OSSE_SCREENSHOTS, by default the ctest build
folder's screenshots/ (next to OSSE_BIN).

Not a test itself (only test_*.py are); Python standard library only.
"""

import json
import os
import subprocess

SRC = os.environ.get("OSSE_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BROWSER_DIR = os.path.join(SRC, "tests", "browser")


def screenshot_dir():
    d = os.environ.get("OSSE_SCREENSHOTS")
    if not d:
        from osse_harness import OSSE_BIN
        d = os.path.join(os.path.dirname(os.path.abspath(OSSE_BIN)), "screenshots")
    os.makedirs(d, exist_ok=True)
    return d


def run_script(script, spec, timeout=180):
    """Runs tests/browser/<script> with spec as its JSON argument. Returns
    (exit code, the parsed JSON line or None, stderr text)."""
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules")):
        raise RuntimeError("tests/browser/node_modules is missing: run tests/deps.sh "
                           "(it runs npm ci there)")
    env = dict(os.environ, OSSE_SCREENSHOTS=screenshot_dir())
    p = subprocess.run(["node", os.path.join(BROWSER_DIR, script), json.dumps(spec)],
                       capture_output=True, timeout=timeout, env=env, cwd=BROWSER_DIR)
    out = None
    lines = p.stdout.decode("utf-8", "replace").strip().splitlines()
    if lines:
        try:
            out = json.loads(lines[-1])
        except ValueError:
            out = None
    return p.returncode, out, p.stderr.decode("utf-8", "replace")


def open_page(base, path, name, steps=(), allow=(), collect=None, fonts=None,
              sizes=("desktop", "phone")):
    """Opens base+path at each size with page.js; returns its JSON (with
    "pages": {size: {"url","text","html","values"}}). Raises AssertionError
    with the browser's problems when the page did not load cleanly."""
    spec = {"url": base + path, "name": name, "steps": list(steps), "allow": list(allow),
            "collect": collect or {}, "fonts": fonts or {}, "sizes": list(sizes)}
    rc, out, err = run_script("page.js", spec)
    if rc != 0 or not out or not out.get("ok"):
        raise AssertionError("%s in the browser: exit %s, problems %s\nstderr: %s" % (
            path, rc, out and out.get("problems"), err[-2000:]))
    return out


# Fonts with Thai glyphs: Debian's fonts-thai-tlwg, and the usual others.
THAI_FONTS = ("Loma", "Garuda", "Waree", "Umpush", "Kinnari", "Norasi", "Sawasdee", "Purisa",
              "Laksaman", "Tlwg Typo", "Tlwg Typist", "Tlwg Mono", "Noto Sans Thai",
              "Noto Sans Thai UI", "Noto Serif Thai", "Leelawadee UI", "Thonburi")


def thai_font_used(fonts):
    """Whether the list of renderedFonts drew some glyphs in a Thai font."""
    return any(f["glyphs"] > 0 and any(f["family"].startswith(t) for t in THAI_FONTS)
               for f in fonts or [])
