// track.js: /ui/track?code=... (SPEC §4 tracking by code, public).
//
// Reads GET /v1/track/{code} (no token: the answer has no form and no
// reasons, so this page cannot show personal data) and the workflow's
// public manual (GET /v1/public/services/{id}) for the step titles and the
// agencies' names; shows the status, who holds the file now and until when,
// the steps and the timeline.
import * as osse from '/ui/common.js';

const $ = (id) => document.getElementById(id);

// The manual's step by name: {title, agency (a name)}; the manual is the
// workflow's latest version, so a step an older version had may be missing.
function stepInfo(manual, step) {
  const m = manual && manual.steps.find((s) => s.name === step.name);
  return {
    title: step.title || (m && m.title) || step.name,
    agency: (m && m.agency) || step.agency || null,
  };
}

const APPLICANT = ['ผู้ยื่นคำขอ', 'The applicant'];
const ENDED = new Set(['completed', 'rejected', 'withdrawn', 'expired']);

function holderItem(who, what, step, due) {
  return osse.el('li', { dataset: { step: step ? step.name : '', holder: who[1] } },
    osse.el('strong', { class: 'holder' }, who[0]), who[1] ? osse.el('span', { class: 'en' }, ` · ${who[1]}`) : null,
    what ? ` — ${what}` : null,
    due ? osse.el('span', { class: 'due' }, ' · ภายใน ', osse.el('span', { class: 'en' }, 'until '), osse.timeEl(due)) : null,
    step && step.sla && step.state === 'open' ? [' ', osse.badge(osse.SLA, step.sla)] : null);
}

// Who holds the file: the agency of every open task, the applicant for a
// step waiting on them or a payment due, no one once the request ended.
function holders(view, manual) {
  const out = [];
  for (const s of view.steps) {
    const info = stepInfo(manual, s);
    if (s.state === 'open' && s.kind === 'payment')
      out.push(holderItem(APPLICANT, `ชำระค่าธรรมเนียม · to pay the fee (${info.title})`, s, s.due_at));
    else if (s.state === 'open') {
      const li = holderItem([info.agency || s.agency || '—', ''], info.title, s, s.due_at);
      li.dataset.holder = 'agency';
      li.dataset.agency = s.agency || '';
      out.push(li);
    }
    else if (s.state === 'waiting_applicant')
      out.push(holderItem(APPLICANT, `ส่งข้อมูลเพิ่มเติม · to send more information (${info.title})`, s, null));
  }
  if (!out.length && ENDED.has(view.status))
    out.push(osse.el('li', { dataset: { holder: 'none' } }, 'ไม่มี — คำขอสิ้นสุดแล้ว ',
      osse.el('span', { class: 'en' }, '· No one: the request has ended')));
  else if (!out.length)
    out.push(osse.el('li', { dataset: { holder: 'osse' } }, 'ระบบกำลังดำเนินการ ',
      osse.el('span', { class: 'en' }, '· osse, on an automatic step')));
  return out;
}

function render(view, manual) {
  osse.fill($('service-title'), manual ? manual.title : view.workflow);
  const st = $('status');
  st.dataset.status = view.status;
  osse.fill(st, osse.badge(osse.STATUS, view.status));
  osse.fill($('tracking-code'), view.tracking_code || '');
  osse.fill($('submitted'), osse.timeEl(view.submitted_at));
  osse.fill($('holders'), holders(view, manual));

  const rows = view.steps.map((s) => {
    const info = stepInfo(manual, s);
    return osse.el('tr', { dataset: { step: s.name, state: s.state } },
      osse.el('td', null, info.title),
      osse.el('td', null, info.agency || '—'),
      osse.el('td', null, osse.badge(osse.STATE, s.state)),
      osse.el('td', null, osse.timeEl(s.opened_at)),
      osse.el('td', null, osse.timeEl(s.due_at)),
      osse.el('td', null, osse.timeEl(s.decided_at)));
  });
  osse.fill($('steps').tBodies[0], rows);
  osse.stackTable($('steps'));

  const fee = view.fee;
  $('fee-card').hidden = !fee;
  if (fee)
    osse.fill($('fee'),
      osse.el('dt', null, 'จำนวน · Amount'), osse.el('dd', { id: 'fee-amount' }, `${fee.amount} บาท (THB)`),
      osse.el('dt', null, 'ชำระแล้ว · Paid'), osse.el('dd', null, fee.paid ? 'ชำระแล้ว · paid' : 'ยังไม่ชำระ · not yet'),
      fee.reference ? [osse.el('dt', null, 'เลขอ้างอิง · Reference'), osse.el('dd', { class: 'mono' }, fee.reference)] : null);

  const lic = view.licence;
  $('licence-card').hidden = !lic;
  if (lic)
    osse.fill($('licence'),
      osse.el('dt', null, 'เลขที่ · Number'),
      osse.el('dd', null, osse.el('a', { href: `/ui/registry/${encodeURIComponent(lic.number)}` }, lic.number)),
      osse.el('dt', null, 'สถานะ · Status'), osse.el('dd', null, lic.status),
      osse.el('dt', null, 'ใช้ได้ถึง · Valid until'), osse.el('dd', null, osse.timeEl(lic.valid_until)));

  osse.fill($('timeline'), view.timeline.map((t) =>
    osse.el('li', { dataset: { type: t.type } }, osse.timeEl(t.at), osse.el('span', { class: 'text' }, t.text))));
  $('result').hidden = false;
}

async function load(code) {
  $('problem').hidden = true;
  $('result').hidden = true;
  $('loading').hidden = false;
  try {
    const view = await osse.api(`/v1/track/${encodeURIComponent(code)}`, { auth: false });
    const manual = await osse.api(`/v1/public/services/${encodeURIComponent(view.workflow)}`,
      { auth: false }).catch(() => null);
    render(view, manual);
  } catch (e) {
    osse.showProblem($('problem'), e.status === 404
      ? new Error('ไม่พบคำขอที่มีรหัสนี้ · No request has this tracking code.') : e);
  } finally {
    $('loading').hidden = true;
  }
}

osse.markNav();
const code = osse.query('code');
if (code) {
  $('code').value = code;
  load(code.trim());
}
