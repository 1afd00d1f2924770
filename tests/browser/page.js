// page.js: open one page of osse, do a few steps, say what it shows.
//
//   node tests/browser/page.js '<json>'
//
// where <json> is {"url", "name", "sizes": ["desktop","phone"], "allow":
// [regexp source, ...], "steps": [...], "collect": {"key": "expression"},
// "fonts": {"key": "selector"}}.
// For each size, a fresh page opens url (lib.js: no console error, no failed
// request), runs the steps in order, saves <name>-<size>.png, and reports
// the page's text (innerText), its HTML, each collect expression's value
// (evaluated in the page) and, for each fonts selector, the fonts its text
// was drawn with (lib.js renderedFonts). A step is one of
//   {"wait": "css selector"}             until it exists (10 s)
//   {"waitText": ["selector", "text"]}   until its text holds text
//   {"waitFor": "expression"}            until the expression is truthy
//   {"fill": ["selector", "text"]}       replace an input's value, as typed
//   {"click": "selector"}
//   {"goto": "url"}                      another address in the same page
// Prints lib.js's JSON line with "pages": {"desktop": {...}, "phone": {...}}.
'use strict';

const { main, renderedFonts } = require('./lib');

const WAIT = { timeout: 10000 };

async function step(page, st) {
  if (st.wait) await page.waitForSelector(st.wait, WAIT);
  else if (st.waitText)
    await page.waitForFunction(
      (sel, text) => [...document.querySelectorAll(sel)].some((e) => e.textContent.includes(text)),
      WAIT, st.waitText[0], st.waitText[1]);
  else if (st.waitFor) await page.waitForFunction(st.waitFor, WAIT);
  else if (st.fill) {
    await page.waitForSelector(st.fill[0], WAIT);
    await page.$eval(st.fill[0], (e) => { e.value = ''; });
    await page.type(st.fill[0], st.fill[1]);
  } else if (st.click) {
    await page.waitForSelector(st.click, WAIT);
    await page.click(st.click);
  } else if (st.goto) await page.goto(st.goto, { waitUntil: 'networkidle0' });
  else throw new Error(`unknown step ${JSON.stringify(st)}`);
}

const arg = process.argv[2];
if (!arg) {
  process.stderr.write('usage: node page.js \'{"url": ..., "name": ...}\'\n');
  process.exit(2);
}
const spec = JSON.parse(arg);

main(async (s) => {
  const pages = {};
  const allow = (spec.allow || []).map((r) => new RegExp(r));
  for (const size of spec.sizes || ['desktop', 'phone']) {
    const name = `${spec.name}-${size}`;
    const page = await s.open(spec.url, { name, phone: size === 'phone', allow });
    for (const st of spec.steps || []) {
      try {
        await step(page, st);
      } catch (e) {
        s.problems.push(`${name}: step ${JSON.stringify(st)}: ${e.message}`);
        break;
      }
    }
    const values = {};
    for (const [k, expr] of Object.entries(spec.collect || {}))
      values[k] = await page.evaluate(expr);
    const fonts = {};
    for (const [k, sel] of Object.entries(spec.fonts || {}))
      fonts[k] = await renderedFonts(page, sel);
    pages[size] = {
      url: page.url(),
      text: await page.evaluate(() => document.body.innerText),
      html: await page.content(),
      values,
      fonts,
    };
    await s.shot(page, name);
    await page.close();
  }
  return { pages };
});
