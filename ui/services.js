// services.js: /ui/services and /ui/services/<id> (SPEC §12, public).
//
// The list reads GET /v1/public/services; a manual reads
// GET /v1/public/services/{id}: its steps in the order the API gives (one
// that respects `after`), each with its agency, SLA, when it applies and how
// a silent agency is treated; the form's fields (personal ones marked); the
// fee's expression; the longest time through the steps.
import * as osse from '/ui/common.js';

const $ = (id) => document.getElementById(id);
const { el } = osse;

const KIND = {
  task: ['หน่วยงานพิจารณา', 'decided by an agency'],
  payment: ['ชำระค่าธรรมเนียม', 'payment'],
  issue: ['ออกใบอนุญาต', 'licence issued'],
  linkage: ['ตรวจสอบข้อมูลกับหน่วยงานอื่น', 'checked with another agency\'s records'],
};

// "15 working days" or "P30D": a definition's SLA as a reader takes it.
function sla(text) {
  if (!text) return 'ไม่กำหนด · no time limit';
  return /^P/.test(text) ? osse.fmtDuration(text, false) : text;
}

function onBreach(b) {
  if (!b) return null;
  if (typeof b === 'object' && b.escalate) return `เสนอต่อ · escalated to ${b.escalate}`;
  const words = {
    notify: 'แจ้งเตือน · the agency is reminded',
    approve: 'ถือว่าอนุมัติ · deemed approved',
    reject: 'ถือว่าไม่อนุมัติ · deemed rejected',
    expire: 'คำขอหมดอายุ · the request expires',
  };
  return words[b] || (typeof b === 'string' ? b : JSON.stringify(b));
}

function maxTime(m) {
  const parts = [];
  if (m.max_working_days !== null && m.max_working_days !== undefined)
    parts.push(`${m.max_working_days} วันทำการ · working days`);
  for (const d of m.max_other || []) parts.push(osse.fmtDuration(d, false));
  return parts.length ? `ไม่เกิน ${parts.join(' + ')}` : 'ไม่กำหนด · no time limit';
}

function feeText(fee) {
  if (!fee) return 'ไม่มี · none';
  const f = fee.fields && fee.fields.length ? ` (${fee.fields.join(', ')})` : '';
  return el('span', null, el('code', { class: 'mono' }, fee.expression), ' บาท · THB', f);
}

function renderList(list) {
  const cards = list.services.map((s) => el('section', { class: 'card service', dataset: { id: s.id } },
    el('h2', null, el('a', { href: `/ui/services/${encodeURIComponent(s.id)}` }, s.title)),
    el('dl', { class: 'facts' },
      el('dt', null, 'หน่วยงาน · Agencies'),
      el('dd', null, el('ul', { class: 'pages agencies' }, s.agencies.map((a) => el('li', null, a)))),
      el('dt', null, 'ระยะเวลาสูงสุด · Longest time'), el('dd', null, maxTime(s)),
      el('dt', null, 'ค่าธรรมเนียม · Fee'), el('dd', null, feeText(s.fee)))));
  osse.fill($('services'), cards.length ? cards : el('p', { class: 'muted' }, 'ยังไม่มีบริการ · No services yet.'));
  $('list').hidden = false;
}

function renderManual(m) {
  document.title = `${m.title} — osse`;
  osse.fill($('title'), m.title);
  osse.fill($('description'), m.description || '');
  osse.fill($('legal-basis'), m.legal_basis || '—');
  osse.fill($('max-time'), maxTime(m));
  $('max-time').dataset.workingDays = m.max_working_days;
  osse.fill($('fee'), feeText(m.fee));
  osse.fill($('version'), String(m.version));
  osse.fill($('steps'), m.steps.map((s, i) => {
    const kind = KIND[s.kind] || [s.kind, ''];
    return el('li', { dataset: { step: s.name, kind: s.kind } },
      el('strong', { class: 'step-title' }, `${i + 1}. ${s.title || s.name}`),
      el('dl', { class: 'facts' },
        el('dt', null, 'ประเภท · Kind'), el('dd', null, `${kind[0]} · ${kind[1]}`),
        s.agency ? [el('dt', null, 'หน่วยงาน · Agency'), el('dd', { class: 'agency' }, s.agency)] : null,
        el('dt', null, 'ระยะเวลา · Time limit'), el('dd', { class: 'sla' }, sla(s.sla)),
        s.when ? [el('dt', null, 'เฉพาะเมื่อ · Only when'), el('dd', null, el('code', { class: 'mono' }, s.when))] : null,
        s.on_breach ? [el('dt', null, 'หากเกินกำหนด · If late'), el('dd', null, onBreach(s.on_breach))] : null));
  }));
  osse.fill($('fields').tBodies[0], m.fields.map((f) => {
    const extra = [];
    if (f.values) extra.push(f.values.join(', '));
    if (f.content_types) extra.push(f.content_types.join(', '));
    if (f.max_size) extra.push(`≤ ${f.max_size} bytes`);
    return el('tr', { dataset: { field: f.name } },
      el('td', null, f.label || f.name, el('div', { class: 'muted mono' }, f.name)),
      el('td', null, f.type),
      el('td', null, f.required ? 'จำเป็น · required' : 'ไม่บังคับ · optional'),
      el('td', null, f.pii ? el('span', { class: 'badge warn', dataset: { pii: 'true' } }, 'ส่วนบุคคล · personal') : '—'),
      el('td', null, extra.join(' · ') || '—'));
  }));
  osse.stackTable($('fields'));
  $('manual').hidden = false;
}

async function main() {
  osse.markNav();
  const id = osse.pathArg('/ui/services/');
  try {
    if (id) renderManual(await osse.api(`/v1/public/services/${encodeURIComponent(id)}`, { auth: false }));
    else renderList(await osse.api('/v1/public/services', { auth: false }));
  } catch (e) {
    osse.showProblem($('problem'), e.status === 404
      ? new Error(`ไม่พบบริการนี้ · No service "${id}".`) : e);
  } finally {
    $('loading').hidden = true;
  }
}

main();
