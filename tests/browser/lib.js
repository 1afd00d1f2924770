// lib.js: the browser tests' one way to open osse's pages (tests/browser/README.md).
//
// Debian's chromium, headless, driven by puppeteer-core (pinned in
// package-lock.json; it downloads no browser). A page opened here fails its
// test on any console error or warning, any uncaught page error, any request
// that fails (refused, blocked by the Content-Security-Policy) and any answer
// of 400 or more, unless the test said it expects that address (`allow`).
// Every page's screenshot goes to $OSSE_SCREENSHOTS (default: ./screenshots,
// ctest's build folder) as <name>.png.
'use strict';

const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');

const DESKTOP = { width: 1280, height: 900, deviceScaleFactor: 1 };
// A phone held upright (a 2020s Android's CSS pixels), touch on.
const PHONE = { width: 390, height: 844, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

function shotDir() {
  const dir = process.env.OSSE_SCREENSHOTS || path.join(process.cwd(), 'screenshots');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

async function launch() {
  const args = ['--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
    '--no-default-browser-check', '--disable-extensions', '--lang=th-TH,en'];
  // Chromium's sandbox needs user namespaces that root in a container lacks.
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  return puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args,
  });
}

// A session: one browser, the pages it opened, and every problem seen.
class Session {
  constructor(browser) {
    this.browser = browser;
    this.problems = [];
    this.shots = [];
  }

  // Opens url at desktop size, or phone size with opts.phone. opts.allow: a
  // list of RegExps of addresses whose failure or 4xx the test expects.
  // Resolves once the page's load event fired and the network is quiet.
  async open(url, opts = {}) {
    const allow = opts.allow || [];
    const allowed = (u) => allow.some((re) => re.test(u));
    const page = await this.browser.newPage();
    await page.setViewport(opts.phone ? PHONE : DESKTOP);
    const where = opts.name || url;
    page.on('console', (m) => {
      const t = m.type();
      if (t !== 'error' && t !== 'warn' && t !== 'warning') return;
      const loc = m.location() || {};
      // "Failed to load resource: ... 404" of an address the test expects.
      if (loc.url && allowed(loc.url) && /Failed to load resource/.test(m.text())) return;
      this.problems.push(`${where}: console ${t}: ${m.text()} (${loc.url || '?'})`);
    });
    page.on('pageerror', (e) => this.problems.push(`${where}: page error: ${e.message}`));
    page.on('requestfailed', (r) => {
      if (!allowed(r.url()))
        this.problems.push(`${where}: request failed: ${r.url()} ${r.failure() && r.failure().errorText}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400 && !allowed(r.url()))
        this.problems.push(`${where}: ${r.status()} for ${r.url()}`);
    });
    const res = await page.goto(url, { waitUntil: 'networkidle0', timeout: 30000 });
    if (!res || res.status() !== 200)
      this.problems.push(`${where}: the page answered ${res ? res.status() : 'nothing'}`);
    return page;
  }

  // Saves the page's screenshot as <name>.png (the whole page).
  async shot(page, name) {
    const file = path.join(shotDir(), `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    this.shots.push(file);
    return file;
  }

  check(ok, what) {
    if (!ok) this.problems.push(what);
    return ok;
  }
}

// The fonts the browser drew the first element matching selector with
// (its text only, not its children's): [{family, glyphs}], from the
// DevTools protocol's CSS.getPlatformFontsForNode. What a screenshot shows,
// as data: Thai text drawn by a font that has Thai glyphs, not boxes.
async function renderedFonts(page, selector) {
  const cdp = await page.createCDPSession();
  try {
    await cdp.send('DOM.enable');
    await cdp.send('CSS.enable');
    const { root } = await cdp.send('DOM.getDocument', { depth: -1 });
    const { nodeId } = await cdp.send('DOM.querySelector', { nodeId: root.nodeId, selector });
    if (!nodeId) return null;
    const { fonts } = await cdp.send('CSS.getPlatformFontsForNode', { nodeId });
    return fonts.map((f) => ({ family: f.familyName, glyphs: f.glyphCount }));
  } finally {
    await cdp.detach().catch(() => {});
  }
}

// Runs fn(session) in a fresh browser, then prints one JSON line on stdout
// ({"ok","problems","shots", ...fn's result}) and exits 0 when no problem
// was seen, 1 otherwise. A test that throws is a problem, not a crash.
async function main(fn) {
  let browser;
  let out = {};
  let s;
  try {
    browser = await launch();
    s = new Session(browser);
    out = (await fn(s)) || {};
  } catch (e) {
    (s || (s = { problems: [], shots: [] })).problems.push(`failed: ${e && e.stack ? e.stack : e}`);
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
  const ok = s.problems.length === 0;
  process.stdout.write(JSON.stringify({ ok, problems: s.problems, shots: s.shots, ...out }) + '\n');
  process.exit(ok ? 0 : 1);
}

module.exports = { main, launch, renderedFonts, Session, DESKTOP, PHONE };
