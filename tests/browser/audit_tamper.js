// audit_tamper.js: the auditor's page /ui/audit against a server that lies
// about its consistency proof (tests/integration/test_ui_audit.py).
//
//   node tests/browser/audit_tamper.js '{"url", "name", "earlier", "proof": {"from", "to",
//     "hashes": [...]}, "others": {"<size>": [hashes of the proof from that size], ...}}'
//
// For each way of changing the real proof (each hash with a bit flipped,
// the last hash left out, a hash added, the hashes reversed, the true proof
// from another earlier size), a fresh page
// opens url (lib.js: no console error), then answers its requests to
// /v1/log/proof/consistency with the changed proof (puppeteer's request
// interception), puts the earlier checkpoint in its box and clicks Verify;
// it reports each case's verdict [data-result, text]. Reversing is left out
// for a proof of one hash. Screenshot: <name>.png of the first case.
'use strict';

const { main } = require('./lib');

const spec = JSON.parse(process.argv[2]);

function flip(h) {
  return (parseInt(h[0], 16) ^ 1).toString(16) + h.slice(1);
}

function cases(hashes, others) {
  const out = hashes.map((h, i) => [`flip ${i}`, hashes.map((x, j) => (j === i ? flip(x) : x))]);
  out.push(['drop the last', hashes.slice(0, -1)]);
  out.push(['add one', hashes.concat([hashes[0]])]);
  if (hashes.length > 1) out.push(['reversed', hashes.slice().reverse()]);
  // A true proof, but from another size than the earlier checkpoint's.
  for (const [from, h] of Object.entries(others || {})) out.push([`the proof from ${from}`, h]);
  return out;
}

main(async (s) => {
  const verdicts = {};
  let first = true;
  for (const [what, hashes] of cases(spec.proof.hashes, spec.others)) {
    const page = await s.open(spec.url, { name: `${spec.name} ${what}` });
    await page.waitForFunction(() => document.body.dataset.done === 'true', { timeout: 10000 });
    await page.setRequestInterception(true);
    page.on('request', (r) => {
      if (r.url().includes('/v1/log/proof/consistency')) {
        r.respond({ status: 200, contentType: 'application/json',
          body: JSON.stringify({ ...spec.proof, hashes }) });
      } else {
        r.continue();
      }
    });
    await page.$eval('#earlier', (e, v) => { e.value = v; }, spec.earlier);
    await page.click('#verify');
    await page.waitForFunction(() => {
      const r = document.getElementById('verdict').dataset.result;
      return document.body.dataset.done === 'true' && (r === 'verified' || r === 'failed');
    }, { timeout: 10000 });
    verdicts[what] = await page.$eval('#verdict', (e) => [e.dataset.result, e.textContent]);
    if (first) await s.shot(page, spec.name);
    first = false;
    await page.close();
  }
  return { verdicts };
});
