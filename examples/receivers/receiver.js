#!/usr/bin/env node
// receiver.js: a webhook receiver for osse's deliveries (SPEC §7), for an
// agency (its webhook_url) or a portal (a subscription's url). Node.js
// standard library only (node:http, node:crypto, node:fs); Node 18 or later.
//
// Run it:
//
//     OSSE_WEBHOOK_SECRET=<the secret> node receiver.js --port 8099 --dir ./inbox
//
// where the secret is the agency's `webhook_secret` (PUT /v1/agencies/{id})
// or the subscription's `secret` (PUT /v1/subscriptions/{id}), and point the
// agency or subscription at http://HOST:8099/ (osse wants https: unless it
// runs with --allow-private-urls: put a TLS proxy in front in production).
//
// What it guarantees (the same as receiver.py):
// - only deliveries signed with the secret are processed: `Osse-Signature:
//   t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (one v1= per
//   secret osse signs with; during a rotation two, and either may match),
//   compared with crypto.timingSafeEqual; a missing or bad signature, a body
//   changed by one byte, or a t more than --tolerance seconds (default 300)
//   from this machine's clock is 401 and processes nothing;
// - each delivery is processed once: osse delivers at least once and signs
//   each attempt afresh, so a retry or a replayed capture is answered 200 and
//   not processed again. The key is the body's "id", which the signature
//   covers; the Osse-Delivery header, which it does not, must equal it (400
//   otherwise). Processed ids are kept in DIR/seen (one a line), read again
//   at start, so a restart does not process a delivery twice;
// - an event is acknowledged (2xx) only once it is recorded (a line of
//   DIR/events.jsonl, the body as it came, and a line on stdout); if that
//   fails the answer is 500 and osse tries again later.
// Node runs the handlers on one thread and the recording is synchronous, so
// two copies of one delivery arriving together cannot both be processed.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const MAX_BODY = 1 << 20;
const ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

function args() {
  const a = { host: '127.0.0.1', port: 8099, dir: './inbox', tolerance: 300 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in a) || i + 1 >= argv.length) {
      console.error('usage: node receiver.js [--host H] [--port P] [--dir DIR] [--tolerance S]');
      process.exit(2);
    }
    a[k] = typeof a[k] === 'number' ? Number(argv[++i]) : argv[++i];
  }
  return a;
}

// [true] when one v1= of header is the HMAC of "<t>.<body>" and t is within
// tolerance seconds of now; else [false, why].
function signatureOk(secret, header, body, tolerance) {
  let t = null;
  const sigs = [];
  for (const part of String(header || '').split(',')) {
    const i = part.indexOf('=');
    const k = part.slice(0, i).trim(), v = part.slice(i + 1).trim();
    if (i > 0 && k === 't' && /^[0-9]+$/.test(v)) t = v;
    else if (i > 0 && k === 'v1') sigs.push(v);
  }
  if (t === null || sigs.length === 0) return [false, 'no t= or v1= in Osse-Signature'];
  if (Math.abs(Number(t) - Date.now() / 1000) > tolerance)
    return [false, `the signature's time is more than ${tolerance}s away`];
  const want = crypto.createHmac('sha256', secret)
    .update(t + '.').update(body).digest();
  let ok = false;
  for (const s of sigs) {
    const got = /^[0-9a-f]{64}$/.test(s) ? Buffer.from(s, 'hex') : null;
    if (got && crypto.timingSafeEqual(want, got)) ok = true;
  }
  return ok ? [true] : [false, 'no v1= matches'];
}

function main() {
  const a = args();
  const secret = process.env.OSSE_WEBHOOK_SECRET;
  if (!secret) {
    console.error('receiver: set OSSE_WEBHOOK_SECRET to the webhook or subscription secret');
    process.exit(2);
  }
  fs.mkdirSync(a.dir, { recursive: true });
  const seenPath = path.join(a.dir, 'seen');
  const eventsPath = path.join(a.dir, 'events.jsonl');
  const seen = new Set(fs.existsSync(seenPath)
    ? fs.readFileSync(seenPath, 'utf8').split('\n').filter(Boolean) : []);

  // Records the event once; true for a new one. Throws when it cannot be
  // recorded (nothing marked seen then). The event first, then its id: a
  // crash between the two makes a retry record it again, never lose it.
  function processOnce(id, body) {
    if (seen.has(id)) return false;
    const line = Buffer.concat([body.map((b) => (b === 10 ? 32 : b)), Buffer.from('\n')]);
    const ev = fs.openSync(eventsPath, 'a');
    try { fs.writeSync(ev, line); fs.fsyncSync(ev); } finally { fs.closeSync(ev); }
    const sn = fs.openSync(seenPath, 'a');
    try { fs.writeSync(sn, id + '\n'); fs.fsyncSync(sn); } finally { fs.closeSync(sn); }
    seen.add(id);
    return true;
  }

  const server = http.createServer((req, res) => {
    const answer = (status, text) => {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(text + '\n');
    };
    if (req.method !== 'POST') return answer(405, 'deliveries are POSTed');
    const chunks = [];
    let size = 0, tooBig = false;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) tooBig = true;
      else chunks.push(c);
    });
    req.on('end', () => {
      if (tooBig) return answer(413, 'too large');
      const body = Buffer.concat(chunks);
      const [ok, why] = signatureOk(secret, req.headers['osse-signature'], body, a.tolerance);
      if (!ok) return answer(401, 'bad signature: ' + why);
      let event;
      try { event = JSON.parse(body.toString('utf8')); } catch (e) { event = null; }
      const id = event && typeof event === 'object' ? event.id : undefined;
      if (typeof id !== 'string' || !ID_RE.test(id) || req.headers['osse-delivery'] !== id)
        return answer(400, "Osse-Delivery does not match the body's id");
      let fresh;
      try { fresh = processOnce(id, body); } catch (e) {
        return answer(500, 'cannot record it: ' + e.message);
      }
      if (fresh) console.log(`processed ${id} ${event.type}`);
      answer(200, fresh ? 'processed' : 'already processed');
    });
  });
  server.listen(a.port, a.host, () => {
    const ad = server.address();
    console.log(`receiver: listening on ${ad.address}:${ad.port}`);
  });
  process.on('SIGTERM', () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}

main();
