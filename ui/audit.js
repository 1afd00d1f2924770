// audit.js: the auditor's page (SPEC §13, §6; docs/design.md "Pages").
//
// Checks in the browser, with WebCrypto only, that
//   1. the verifier key is well formed: "<name>+<8 hex key id>+<base64(0x01
//      || Ed25519 public key)>", key id = SHA-256(name || 0x0A || 0x01 ||
//      pk)[0..4] (C2SP signed-note);
//   2. the latest checkpoint (GET /v1/log/checkpoint, Accept: text/plain, a
//      C2SP tlog-checkpoint) carries a signature line "— <name>
//      <base64(key id || 64-byte signature)>" that verifies over the note's
//      body (everything before the blank line, its last newline included),
//      and its body is "<origin = the key's name>\n<size>\n<base64 root>\n";
//   3. an earlier checkpoint (pasted, or the last one this browser verified,
//      kept in localStorage) passes the same checks;
//   4. the latest tree extends the earlier one: the RFC 6962 consistency
//      proof of GET /v1/log/proof/consistency?from=m&to=n, verified by the
//      algorithm of RFC 9162 §2.1.4.2 against both signed roots.
// Tree sizes are BigInts: JavaScript's bit operators on numbers are 32-bit.
import * as osse from '/ui/common.js';

const REMEMBERED = 'osse.audit.checkpoint';
const PINNED_KEY = 'osse.audit.key';
const $ = (id) => document.getElementById(id);

class Failed extends Error {}

// --- bytes ---

// Strict base64 (padding required, nothing skipped), of want bytes if given.
function b64(s, want, what) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw new Failed(`${what} is not base64`);
  const out = osse.b64Decode(s);
  if (want !== undefined && out.length !== want)
    throw new Failed(`${what} is ${out.length} bytes, not ${want}`);
  return out;
}

function unhex(s, what) {
  if (typeof s !== 'string' || !/^([0-9a-f]{2})*$/.test(s)) throw new Failed(`${what} is not lowercase hex`);
  return Uint8Array.from(s.match(/../g) || [], (x) => parseInt(x, 16));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) {
    out.set(p, i);
    i += p.length;
  }
  return out;
}

const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// RFC 6962 §2.1: an inner node is SHA-256(0x01 || left || right).
const node = (l, r) => osse.sha256(concat(Uint8Array.of(1), l, r));

// --- keys and notes ---

async function parseVerifierKey(text) {
  const s = text.trim();
  const p1 = s.indexOf('+');
  const p2 = p1 < 0 ? -1 : s.indexOf('+', p1 + 1);
  if (p1 < 1 || p2 !== p1 + 9) throw new Failed('the verifier key is not <name>+<8 hex>+<base64>');
  const name = s.slice(0, p1);
  const id = unhex(s.slice(p1 + 1, p2), "the verifier key's id");
  const raw = b64(s.slice(p2 + 1), 33, 'the verifier key');
  if (raw[0] !== 1) throw new Failed('the verifier key is not an Ed25519 key');
  const pk = raw.slice(1);
  const want = (await osse.sha256(concat(osse.utf8.encode(name), Uint8Array.of(0x0a, 0x01), pk))).slice(0, 4);
  if (!equal(id, want)) throw new Failed("the verifier key's id does not match its name and key");
  return { name, id, pk };
}

// Checks the note's signature by vk and parses its body: {origin, size, root, text}.
async function openCheckpoint(vk, text, what) {
  if (text.length > 65536) throw new Failed(`${what}: longer than a checkpoint can be`);
  const cut = text.indexOf('\n\n');
  if (cut < 0 || !text.endsWith('\n'))
    throw new Failed(`${what}: not a signed note (no blank line before its signatures)`);
  const body = text.slice(0, cut + 1);
  let named = false;
  let signed = false;
  for (const line of text.slice(cut + 2, -1).split('\n')) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw new Failed(`${what}: a signature line is malformed`);
    if (m[1] !== vk.name) continue; // another key's (a witness's): not ours to check
    const raw = b64(m[2], undefined, `${what}: a signature`);
    if (raw.length !== 68 || !equal(raw.slice(0, 4), vk.id)) continue;
    named = true;
    let good;
    try {
      good = await osse.ed25519Verify(vk.pk, raw.slice(4), osse.utf8.encode(body));
    } catch (e) {
      throw new Failed(`this browser cannot check Ed25519 signatures (${e.message})`);
    }
    if (good) {
      signed = true;
      break;
    }
  }
  if (!named) throw new Failed(`${what}: no signature by the key ${vk.name}`);
  if (!signed) throw new Failed(`${what}: the signature does not verify`);
  const lines = body.slice(0, -1).split('\n');
  if (lines.length < 3) throw new Failed(`${what}: the body has fewer than three lines`);
  if (lines[0] !== vk.name) throw new Failed(`${what}: its origin is not the key's name`);
  if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Failed(`${what}: its size is not a number`);
  return { origin: lines[0], size: BigInt(lines[1]), root: b64(lines[2], 32, `${what}: its root`), text };
}

// --- RFC 9162 §2.1.4.2: verifying a consistency proof ---

async function verifyConsistency(m, n, proof, root1, root2) {
  if (m === n) {
    if (proof.length) throw new Failed('a proof between equal sizes must be empty');
    if (!equal(root1, root2))
      throw new Failed('the two checkpoints have the same size but different roots: the log forked');
    return;
  }
  if (m > n) throw new Failed('the earlier checkpoint is larger than the latest: the log shrank');
  if (!proof.length) throw new Failed('the consistency proof is empty');
  // When m is a power of two, the old tree is a whole subtree: its root is the proof's first node.
  const p = (m & (m - 1n)) === 0n ? [root1, ...proof] : proof;
  let fn = m - 1n;
  let sn = n - 1n;
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = p[0];
  let sr = p[0];
  for (const c of p.slice(1)) {
    if (sn === 0n) throw new Failed('the consistency proof is too long');
    if ((fn & 1n) || fn === sn) {
      fr = await node(c, fr);
      sr = await node(c, sr);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await node(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Failed('the consistency proof is too short');
  if (!equal(fr, root1)) throw new Failed('the consistency proof does not lead to the earlier root');
  if (!equal(sr, root2)) throw new Failed('the consistency proof does not lead to the latest root');
}

// --- the page ---

function check(ok, text) {
  $('checks').append(osse.el('li', { class: ok ? 'ok' : 'bad', dataset: { ok: String(ok) } },
    osse.el('span', { class: `badge ${ok ? 'ok' : 'bad'}` }, ok ? '✓' : '✗'), ' ', text));
}

function verdict(result, text) {
  const v = $('verdict');
  v.textContent = text;
  v.dataset.result = result;
  v.className = `verdict ${{ verified: 'ok', partial: 'warn', failed: 'bad' }[result]}`;
  $('result').hidden = false;
}

async function get(path, accept) {
  try {
    return await osse.api(path, { auth: false, headers: { Accept: accept } });
  } catch (e) {
    throw new Failed(`${path} answered ${e.status || ''} ${e.message}`);
  }
}

const short = (root) => `${osse.hex(root).slice(0, 16)}…`;

async function verify() {
  $('checks').replaceChildren();
  $('latest').replaceChildren();
  $('verify').disabled = true;
  status('กำลังตรวจสอบ… · Verifying…');
  delete document.body.dataset.done;
  try {
    const keyText = $('key').value.trim();
    if (!keyText) throw new Failed('no verifier key');
    const vk = await parseVerifierKey(keyText);
    const note = await get('/v1/log/checkpoint', 'text/plain');
    if (typeof note !== 'string') throw new Failed('the checkpoint is not a signed note');
    const latest = await openCheckpoint(vk, note, 'the latest checkpoint');
    // One line a block, so that the long signature line wraps on a phone.
    osse.fill($('latest'), latest.text.split('\n').slice(0, -1).map((l) => osse.el('div', null, l || '\u00a0')));
    check(true, `the latest checkpoint (size ${latest.size}, root ${short(latest.root)}) is signed by ${vk.name}`);
    const text = $('earlier').value.replace(/\r\n/g, '\n').trim();
    if (!text) {
      remember(latest.text, keyText);
      verdict('partial', 'signature verified; no earlier checkpoint to compare with (this one is ' +
        'remembered for the next visit)');
      return;
    }
    const earlier = await openCheckpoint(vk, `${text}\n`, 'the earlier checkpoint');
    check(true, `the earlier checkpoint (size ${earlier.size}, root ${short(earlier.root)}) is signed by ${vk.name}`);
    const m = earlier.size;
    const n = latest.size;
    let proof = [];
    if (m > 0n && m < n) {
      const p = await get(`/v1/log/proof/consistency?from=${m}&to=${n}`, 'application/json');
      if (String(p.from) !== String(m) || String(p.to) !== String(n) || !Array.isArray(p.hashes))
        throw new Failed('the consistency proof is for other sizes');
      proof = p.hashes.map((h) => unhex(h, 'a hash of the proof'));
    }
    if (m > 0n) await verifyConsistency(m, n, proof, earlier.root, latest.root);
    check(true, `the tree of size ${n} extends the tree of size ${m} (a consistency proof of ${proof.length} hashes)`);
    remember(latest.text, keyText);
    verdict('verified', 'verified');
  } catch (e) {
    if (!(e instanceof Failed)) throw e; // a bug of this page: lib.js reports it
    check(false, e.message);
    verdict('failed', `failed: ${e.message}`);
  } finally {
    $('verify').disabled = false;
    status('');
    document.body.dataset.done = 'true';
  }
}

function remember(note, key) {
  localStorage.setItem(REMEMBERED, note);
  localStorage.setItem(PINNED_KEY, key);
}

function status(text) {
  $('status').textContent = text;
}

$('check').addEventListener('submit', (ev) => {
  ev.preventDefault();
  verify();
});
$('forget').addEventListener('click', () => {
  localStorage.removeItem(REMEMBERED);
  localStorage.removeItem(PINNED_KEY);
  $('earlier').value = '';
});

// The remembered checkpoint and the key it was verified with; else the
// server's key. Then a first check at once.
$('earlier').value = localStorage.getItem(REMEMBERED) || '';
let key = localStorage.getItem(PINNED_KEY);
if (!key) {
  try {
    key = (await get('/v1/log/public-key', 'application/json')).verifier_key;
  } catch (e) {
    osse.showProblem($('problem'), e);
  }
}
$('key').value = key || '';
await verify();
