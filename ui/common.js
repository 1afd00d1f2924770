// common.js: what every page of /ui/ shares (an ES module: import * as osse
// from "/ui/common.js").
//
// - api(): the one way a page calls osse, same origin, with the token of
//   token() when there is one; an error answer becomes an ApiError.
// - token(): a token handed in the address's fragment (#token=...) is taken
//   from there once, kept in this tab's sessionStorage (gone with the tab,
//   never in localStorage, a cookie or a query string: a query string reaches
//   logs and Referer headers, a fragment never leaves the browser), and wiped
//   from the address bar.
// - el(): builds DOM from text only (no innerHTML anywhere: whatever the
//   server holds is shown as text, never run as markup).
// - base64url, SHA-256 and Ed25519 verification by WebCrypto.
// - fmtTime(): times as Thailand reads them (UTC+07:00, no summer time).

const TOKEN_KEY = 'osse.token';

// Takes #token=... off the address once, into sessionStorage.
function takeFragmentToken() {
  const h = location.hash.replace(/^#/, '');
  if (!h) return;
  const params = new URLSearchParams(h);
  const t = params.get('token');
  if (!t) return;
  sessionStorage.setItem(TOKEN_KEY, t);
  params.delete('token');
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
}
takeFragmentToken();
window.addEventListener('hashchange', takeFragmentToken);

// The token this tab holds, or null.
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// Keeps t as this tab's token (a sign-in box), or forgets it (null).
export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t.trim());
  else sessionStorage.removeItem(TOKEN_KEY);
}

// An error answer of osse: status, and the body's {"error":{"code",
// "message","details"}} (or a bare RFC 9457 problem's title/detail).
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    const message = e.message || (body && (body.detail || body.title)) || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.code = e.code || (body && body.type) || 'http_error';
    this.details = Array.isArray(e.details) ? e.details : [];
  }
}

// Calls osse: path is "/v1/...", opts {method, body (sent as JSON), auth
// (default true: the token if any), headers}. Resolves to the parsed JSON
// (or the text of a non-JSON answer); rejects with an ApiError for a status
// of 400 or more, or with the network's error.
export async function api(path, opts = {}) {
  const headers = { Accept: 'application/json', ...(opts.headers || {}) };
  const t = opts.auth === false ? null : token();
  if (t) headers.Authorization = `Bearer ${t}`;
  let body;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  const res = await fetch(path, {
    method: opts.method || 'GET',
    headers,
    body,
    credentials: 'omit',
    cache: 'no-store',
    referrerPolicy: 'no-referrer',
  });
  const type = res.headers.get('Content-Type') || '';
  const data = /json/.test(type) ? await res.json().catch(() => null) : await res.text();
  if (!res.ok) throw new ApiError(res.status, typeof data === 'object' ? data : null);
  return data;
}

// el('p', {class: 'x', dataset: {a: 1}, href}, 'text', child, ...): an
// element; strings become text nodes, null and false are skipped.
export function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// Replaces what node holds with the children.
export function fill(node, ...children) {
  node.replaceChildren();
  for (const c of children.flat())
    if (c !== null && c !== undefined && c !== false)
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// A box saying what went wrong: an ApiError's status, code, message and
// details (each {"path","message"}), or any other error's message.
export function problem(err) {
  const box = el('div', { class: 'problem', role: 'alert' });
  if (err instanceof ApiError) {
    box.append(el('strong', null, `${err.status} `), el('code', null, err.code), ': ', err.message);
    if (err.details.length)
      box.append(el('ul', null, err.details.map((d) =>
        el('li', null, d.path ? el('code', null, d.path) : null, d.path ? ': ' : null, d.message || JSON.stringify(d)))));
  } else {
    box.append(el('strong', null, 'เกิดข้อผิดพลาด · Error: '), String((err && err.message) || err));
  }
  return box;
}

// Shows err in node (which becomes visible), replacing what it held.
export function showProblem(node, err) {
  node.hidden = false;
  return fill(node, problem(err));
}

// A query parameter of this page's address, or null.
export function query(name) {
  return new URLSearchParams(location.search).get(name);
}

// The segment after prefix in this page's path ("/ui/services/" in
// "/ui/services/restaurant-license"), decoded; null when there is none.
export function pathArg(prefix) {
  const p = location.pathname;
  if (!p.startsWith(prefix)) return null;
  const rest = p.slice(prefix.length).replace(/\/$/, '');
  return rest && !rest.includes('/') ? decodeURIComponent(rest) : null;
}

// --- bytes ---

export const utf8 = {
  encode: (s) => new TextEncoder().encode(s),
  decode: (b) => new TextDecoder('utf-8', { fatal: true }).decode(b),
};

// base64url (RFC 4648 §5, padding optional) to bytes; throws on anything else.
export function b64urlDecode(s) {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(s)) throw new Error('not base64url');
  const b64 = s.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
  if (b64.length % 4 === 1) throw new Error('not base64url');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function b64urlEncode(bytes) {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// Standard base64 (with padding) to bytes.
export function b64Decode(s) {
  const bin = atob(s.trim());
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export function hex(bytes) {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// SHA-256 of bytes, as bytes.
export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

// Whether sig (64 bytes) is publicKey's (32 raw bytes) Ed25519 signature of
// msg. WebCrypto's Ed25519; false for a key or signature of the wrong size.
export async function ed25519Verify(publicKey, sig, msg) {
  if (publicKey.length !== 32 || sig.length !== 64) return false;
  const key = await crypto.subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
  return crypto.subtle.verify({ name: 'Ed25519' }, key, sig, msg);
}

// --- showing things ---

const pad = (n) => String(n).padStart(2, '0');

// "2030-01-07 09:00 (UTC+07:00)" for an RFC 3339 time; '' for none.
export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const t = new Date(d.getTime() + 7 * 3600 * 1000);
  return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())} ` +
    `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())} (UTC+07:00)`;
}

// A <time> element showing fmtTime(iso), its machine form in datetime.
export function timeEl(iso) {
  return iso ? el('time', { datetime: iso }, fmtTime(iso)) : el('span', { class: 'muted' }, '—');
}

// An ISO 8601 duration of a definition (P5D, PT4H, P3DT12H; "working"
// marks working time) in words a reader may take in: "5 working days".
export function fmtDuration(d, working) {
  const m = /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$/.exec(d || '');
  if (!m) return d || '';
  const parts = [];
  const w = working ? 'working ' : '';
  const one = (n, unit) => parts.push(`${n} ${w}${unit}${n === 1 ? '' : 's'}`);
  if (m[1]) one(+m[1], 'week');
  if (m[2]) one(+m[2], 'day');
  if (m[3]) one(+m[3], 'hour');
  if (m[4]) one(+m[4], 'minute');
  return parts.join(' ') || d;
}

// The pages of the bar at the top of each, in its order: spelled once
// here (index.html, which needs no script, lists them in its own words).
export const PAGES = [
  ['/ui/track', 'ติดตาม', 'Track'],
  ['/ui/services', 'คู่มือ', 'Services'],
  ['/ui/registry', 'ทะเบียน', 'Registry'],
  ['/ui/inbox', 'งาน', 'Inbox'],
  ['/ui/audit', 'ตรวจสอบ', 'Audit'],
  ['/ui/dashboard', 'สถิติ', 'Dashboard'],
];

// Marks the header's link to this page (aria-current) for the reader.
export function markNav() {
  for (const a of document.querySelectorAll('.top nav a'))
    if (location.pathname === a.getAttribute('href') ||
        location.pathname.startsWith(`${a.getAttribute('href')}/`))
      a.setAttribute('aria-current', 'page');
}

// Fills an empty <header class="top"> with the brand and the bar: every
// page that imports this module gets the same one.
function topBar() {
  const h = document.querySelector('header.top');
  if (!h || h.childElementCount) return;
  h.append(el('a', {class: 'brand', href: '/ui/'}, 'osse'),
           el('nav', null, PAGES.map(([href, th, en]) => el('a', {href}, `${th} · ${en}`))));
  markNav();
}
topBar();

// --- words for the states of SPEC §4, in Thai and English ---

export const STATUS = {
  in_progress: ['กำลังดำเนินการ', 'In progress', ''],
  awaiting_info: ['รอข้อมูลเพิ่มเติม', 'Awaiting information', 'warn'],
  awaiting_payment: ['รอชำระค่าธรรมเนียม', 'Awaiting payment', 'warn'],
  completed: ['เสร็จสิ้น', 'Completed', 'ok'],
  rejected: ['ไม่อนุมัติ', 'Rejected', 'bad'],
  withdrawn: ['ถอนคำขอแล้ว', 'Withdrawn', ''],
  expired: ['หมดอายุ', 'Expired', 'bad'],
};

export const STATE = {
  pending: ['รอดำเนินการ', 'Pending', ''],
  open: ['กำลังพิจารณา', 'Open', 'warn'],
  waiting_applicant: ['รอผู้ยื่นคำขอ', 'Waiting for the applicant', 'warn'],
  approved: ['อนุมัติ', 'Approved', 'ok'],
  rejected: ['ไม่อนุมัติ', 'Rejected', 'bad'],
  done: ['เสร็จแล้ว', 'Done', 'ok'],
  skipped: ['ข้าม', 'Skipped', ''],
  failed: ['ล้มเหลว', 'Failed', 'bad'],
  cancelled: ['ยกเลิก', 'Cancelled', ''],
};

export const SLA = {
  ok: ['ตามกำหนด', 'on time', 'ok'],
  warned: ['ใกล้ครบกำหนด', 'due soon', 'warn'],
  breached: ['เกินกำหนด', 'overdue', 'bad'],
};

// A badge for a value of one of the tables above: "ไทย · English", its
// class from the table, and data-value = the value itself (for tests and
// styles).
export function badge(table, value) {
  const [th, en, cls] = table[value] || [value, '', ''];
  return el('span', { class: `badge ${cls}`.trim(), dataset: { value } }, th,
    en ? el('span', { class: 'en' }, ` · ${en}`) : null);
}

// Lets a table (class "stack") fold into one block per row on a phone:
// each cell gets its column's heading as data-label, which style.css shows
// above the cell's value. Call after filling the body.
export function stackTable(table) {
  if (!table.tHead || !table.tHead.rows.length) return;
  const heads = [...table.tHead.rows[0].cells].map((th) => th.textContent.trim());
  for (const body of table.tBodies)
    for (const tr of body.rows)
      [...tr.cells].forEach((td, i) => { td.dataset.label = heads[i] || ''; });
}
