// registry.js: /ui/registry and /ui/registry/<number> (SPEC §9, public).
//
// The search reads GET /v1/public/licences (q, status; next_cursor for
// more). The licence check reads GET /v1/public/licences/{number} and the
// log's key (GET /v1/log/public-key: {"key_id","public_key" (base64, 32
// bytes)}), and verifies the licence's JWS here, in the browser, with
// WebCrypto's Ed25519: header {"alg":"EdDSA","kid":<key_id>}, signature over
// "header.payload" (docs/design.md, "Licences and the public registry"). It
// answers exactly one of "valid", "revoked", "expired", "signature invalid":
// a JWS that does not verify (or is not for this number) is "signature
// invalid" whatever the registry says; one that does takes the registry's
// status, which comes from the log's events (not this browser's clock).
// The box at the bottom checks a JWS someone handed over the same way.
import * as osse from '/ui/common.js';

const $ = (id) => document.getElementById(id);
const { el } = osse;

let keyAnswer;
function publicKey() {
  keyAnswer = keyAnswer || osse.api('/v1/log/public-key', { auth: false });
  return keyAnswer;
}

const VERDICT = {
  valid: ['ใช้ได้', 'ok'],
  revoked: ['ถูกเพิกถอน', 'bad'],
  expired: ['หมดอายุ', 'warn'],
  'signature invalid': ['ลายมือชื่อไม่ถูกต้อง', 'bad'],
};

// Verifies a compact JWS with the registry's key: {ok, doc} or {ok: false,
// why}. Nothing of the JWS is trusted before its signature holds.
async function verifyJws(jws, key) {
  const parts = jws.split('.');
  if (parts.length !== 3) return { ok: false, why: 'not a compact JWS (three parts joined by ".")' };
  let header;
  let sig;
  try {
    header = JSON.parse(osse.utf8.decode(osse.b64urlDecode(parts[0])));
    sig = osse.b64urlDecode(parts[2]);
  } catch (e) {
    return { ok: false, why: 'its header or signature is not base64url JSON' };
  }
  if (!header || header.alg !== 'EdDSA')
    return { ok: false, why: `its algorithm is ${JSON.stringify(header && header.alg)}, not EdDSA` };
  if (header.kid !== key.key_id)
    return { ok: false, why: `signed by key ${JSON.stringify(header.kid)}; this registry's key is ${key.key_id}` };
  const good = await osse.ed25519Verify(osse.b64Decode(key.public_key), sig,
    osse.utf8.encode(`${parts[0]}.${parts[1]}`));
  if (!good) return { ok: false, why: `the Ed25519 signature does not match key ${key.key_id}` };
  try {
    return { ok: true, doc: JSON.parse(osse.utf8.decode(osse.b64urlDecode(parts[1]))) };
  } catch (e) {
    return { ok: false, why: 'its payload is not JSON' };
  }
}

// The one answer for jws: {verdict, why, doc, entry}. entry: the registry's
// entry when the page has it already; number: the licence the JWS must be.
async function check(jws, number, entry) {
  const key = await publicKey();
  const v = await verifyJws(jws.trim(), key);
  if (!v.ok) return { verdict: 'signature invalid', why: v.why };
  const doc = v.doc;
  if (number && doc.number !== number)
    return { verdict: 'signature invalid', why: `it is signed for licence ${doc.number}, not ${number}`, doc };
  let e = entry && entry.number === doc.number ? entry : null;
  if (!e) {
    try {
      e = await osse.api(`/v1/public/licences/${encodeURIComponent(doc.number)}`, { auth: false });
    } catch (err) {
      if (err.status === 404)
        return { verdict: 'signature invalid', why: `licence ${doc.number} is not in this registry`, doc };
      throw err;
    }
  }
  if (e.status === 'revoked')
    return { verdict: 'revoked', why: `เพิกถอนเมื่อ · revoked ${osse.fmtTime(e.revoked_at)}: ${e.reason || ''}`, doc, entry: e };
  if (e.status === 'expired')
    return { verdict: 'expired', why: `หมดอายุเมื่อ · ended ${osse.fmtTime(e.valid_until)}`, doc, entry: e };
  return { verdict: 'valid', why: `ลายมือชื่อถูกต้อง · the signature holds (key ${key.key_id}), and the registry lists it as valid`, doc, entry: e };
}

function showVerdict(node, whyNode, r) {
  const [th, cls] = VERDICT[r.verdict];
  node.hidden = false;
  node.className = `verdict ${cls}`;
  node.dataset.verdict = r.verdict;
  osse.fill(node, r.verdict);
  osse.fill(whyNode, `${th} — ${r.why}`);
}

function fieldsText(fields) {
  return Object.entries(fields || {}).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' · ');
}

function showEntry(e, doc) {
  const rows = [
    ['เลขที่ · Number', el('span', { class: 'mono', id: 'number' }, e.number)],
    ['ใบอนุญาต · Licence', e.title],
    ['บริการ · Workflow', el('a', { href: `/ui/services/${encodeURIComponent(e.workflow)}` }, e.workflow)],
    ['สถานะในทะเบียน · Registry status', osse.badge({ valid: ['ใช้ได้', 'valid', 'ok'], revoked: ['เพิกถอน', 'revoked', 'bad'], expired: ['หมดอายุ', 'expired', 'warn'] }, e.status)],
    ['ใช้ได้ตั้งแต่ · Valid from', osse.timeEl(e.valid_from)],
    ['ใช้ได้ถึง · Valid until', e.valid_until ? osse.timeEl(e.valid_until) : 'ไม่มีกำหนด · no end'],
    ['ข้อมูลสาธารณะ · Public fields', fieldsText(e.fields)],
  ];
  if (e.revoked_at) rows.push(['เพิกถอนเมื่อ · Revoked', osse.timeEl(e.revoked_at)], ['เหตุผล · Reason', e.reason || '']);
  if (doc && doc.issuer) rows.push(['ผู้ออก · Issuer', el('span', { class: 'mono' }, doc.issuer)]);
  osse.fill($('entry'), rows.map(([k, v]) => [el('dt', null, k), el('dd', null, v)]).flat());
}

async function licencePage(number) {
  $('licence-view').hidden = false;
  let entry;
  try {
    entry = await osse.api(`/v1/public/licences/${encodeURIComponent(number)}`, { auth: false });
  } catch (e) {
    osse.showProblem($('problem'), e.status === 404
      ? new Error(`ไม่พบใบอนุญาตเลขที่นี้ · No licence numbered "${number}".`) : e);
    $('licence-view').hidden = true;
    return;
  }
  showEntry(entry, null);
  if (!entry.jws) {
    showVerdict($('verdict'), $('verdict-why'), { verdict: 'signature invalid', why: 'this licence carries no signature' });
    return;
  }
  const r = await check(entry.jws, number, entry);
  showVerdict($('verdict'), $('verdict-why'), r);
  showEntry(r.entry || entry, r.doc);
}

let cursor = null;
async function search(more) {
  const params = new URLSearchParams();
  const q = $('q').value.trim();
  const status = $('status-filter').value;
  if (q) params.set('q', q);
  if (status) params.set('status', status);
  params.set('limit', '50');
  if (more && cursor) params.set('cursor', cursor);
  try {
    const page = await osse.api(`/v1/public/licences?${params}`, { auth: false });
    const rows = page.licences.map((l) => el('tr', { dataset: { number: l.number, status: l.status } },
      el('td', null, el('a', { class: 'mono', href: `/ui/registry/${encodeURIComponent(l.number)}` }, l.number)),
      el('td', null, l.title),
      el('td', null, osse.badge({ valid: ['ใช้ได้', 'valid', 'ok'], revoked: ['เพิกถอน', 'revoked', 'bad'], expired: ['หมดอายุ', 'expired', 'warn'] }, l.status)),
      el('td', null, osse.timeEl(l.valid_from), ' – ', l.valid_until ? osse.timeEl(l.valid_until) : '…'),
      el('td', null, fieldsText(l.fields))));
    const body = $('licences').tBodies[0];
    if (!more) body.replaceChildren();
    body.append(...rows);
    osse.stackTable($('licences'));
    $('empty').hidden = body.rows.length > 0;
    cursor = page.next_cursor;
    $('more').hidden = !cursor;
    $('problem').hidden = true;
  } catch (e) {
    osse.showProblem($('problem'), e);
  }
}

function searchPage() {
  $('search-view').hidden = false;
  const q = osse.query('q');
  const status = osse.query('status');
  if (q) $('q').value = q;
  if (status) $('status-filter').value = status;
  $('search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if ($('q').value.trim()) p.set('q', $('q').value.trim());
    if ($('status-filter').value) p.set('status', $('status-filter').value);
    history.replaceState(null, '', `/ui/registry${p.toString() ? `?${p}` : ''}`);
    search(false);
  });
  $('more').addEventListener('click', () => search(true));
  search(false);
}

async function checkPasted() {
  const jws = $('jws').value.trim();
  if (!jws) return;
  try {
    showVerdict($('check-verdict'), $('check-why'), await check(jws, null, null));
  } catch (e) {
    osse.showProblem($('problem'), e);
  }
}

osse.markNav();
$('check').addEventListener('click', checkPasted);
const number = osse.pathArg('/ui/registry/');
if (number) licencePage(number);
else searchPage();
