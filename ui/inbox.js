// inbox.js: an agency's inbox (SPEC §13, §4; docs/design.md "Pages").
//
// A person signs in with the agency's token (and optionally an agency id:
// typed in, or from the fragment #token=<token>, or #agency=<id>&token=<token>
// for the platform's token; common.js keeps the token in this
// tab's sessionStorage and wipes it from the address bar), sees the agency's
// open tasks in the server's order and decides them with the call an
// agency's system makes:
//   POST /v1/tasks/{request}/{step}/decision {outcome, reason, expected_version}.
//
// What is shown is what the API gives that agency (SPEC §1, §8), nothing
// added: its inbox entries, the titles of their workflows and steps, its own
// name (GET /v1/agencies/{id} also answers its webhook secret: never shown)
// and, on request, the tracking view of a request it has a task in.
import * as osse from '/ui/common.js';

const AGENCY_KEY = 'osse.inbox.agency';
const $ = (id) => document.getElementById(id);
const defs = new Map(); // workflow id -> its definition, or null

let agency = null;

function status(text) {
  $('status').textContent = text;
}

function clearProblem() {
  $('problem').hidden = true;
  $('problem').replaceChildren();
}

async function definition(wid) {
  if (!defs.has(wid)) {
    try {
      defs.set(wid, (await osse.api(`/v1/workflows/${encodeURIComponent(wid)}`)).definition);
    } catch (e) {
      defs.set(wid, null); // the ids stand in for the titles
    }
  }
  return defs.get(wid);
}

function signedOut(text) {
  osse.setToken(null);
  agency = null;
  $('signin-card').hidden = false;
  $('session').hidden = true;
  $('inbox').hidden = true;
  $('tasks').replaceChildren();
  status(text);
}

// Signs in with the token alone (whose agency GET /v1/principals/me
// says), or with an agency id too: the platform's token reads any agency's
// inbox (and cannot decide in it).
async function signIn(id) {
  clearProblem();
  status('กำลังเข้าสู่ระบบ… · Signing in…');
  let me;
  try {
    if (!id) {
      const who = await osse.api('/v1/principals/me');
      if (!who.agency) {
        signedOut('โทเค็นนี้ไม่ใช่ของหน่วยงาน ใส่รหัสหน่วยงานด้วย · ' +
                  'This token is not an agency\'s: give the agency id too.');
        return;
      }
      id = who.agency;
    }
    agency = id;
    sessionStorage.setItem(AGENCY_KEY, id);
    me = await osse.api(`/v1/agencies/${encodeURIComponent(id)}`);
  } catch (e) {
    osse.showProblem($('problem'), e);
    signedOut('ยังไม่ได้เข้าสู่ระบบ · Not signed in.');
    return;
  }
  $('signin-card').hidden = true;
  $('session').hidden = false;
  $('agency-name').textContent = me.name || id;
  $('agency-id').textContent = id;
  await load();
}

// Every open task, following next_cursor (at most 10 pages of 100).
async function load() {
  status('กำลังโหลด… · Loading…');
  const tasks = [];
  let cursor = null;
  try {
    for (let page = 0; page < 10; page++) {
      const q = `state=open&sort=due&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const r = await osse.api(`/v1/agencies/${encodeURIComponent(agency)}/tasks?${q}`);
      tasks.push(...r.tasks);
      cursor = r.next_cursor;
      if (!cursor) break;
    }
  } catch (e) {
    osse.showProblem($('problem'), e);
    if (e.status === 401 || e.status === 403) signedOut('ยังไม่ได้เข้าสู่ระบบ · Not signed in.');
    return;
  }
  const items = [];
  for (const t of tasks) items.push(await taskItem(t));
  $('tasks').replaceChildren(...items);
  $('count').textContent = `${tasks.length}${cursor ? '+' : ''}`;
  $('empty').hidden = tasks.length > 0;
  $('inbox').hidden = false;
  status(`${tasks.length} open task${tasks.length === 1 ? '' : 's'}.`);
}

const ACTIONS = [
  ['approve', 'อนุมัติ · Approve'],
  ['reject', 'ไม่อนุมัติ · Reject'],
  ['return', 'ส่งกลับผู้ยื่น · Return'],
];

async function taskItem(t) {
  const def = await definition(t.workflow);
  const step = def && def.steps ? def.steps[t.step] : null;
  const rid = `reason-${t.request_id}-${t.step}`;
  const reason = osse.el('textarea', { id: rid, rows: 2, maxlength: 2000 });
  const box = osse.el('div', { class: 'request', hidden: true });
  const more = osse.el('button', { type: 'button', class: 'secondary show-request' },
    'ดูคำขอ · Show the request');
  more.addEventListener('click', () => showRequest(t.request_id, box, more));
  const buttons = ACTIONS.map(([action, label]) => {
    const b = osse.el('button', { type: 'button', dataset: { action } }, label);
    b.addEventListener('click', () => decide(li, t, action, reason.value.trim()));
    return b;
  });
  const li = osse.el('li', { class: 'card task', dataset: { request: t.request_id, step: t.step } },
    osse.el('h3', null, (step && step.title) || t.step, ' ',
      osse.el('span', { class: 'en' }, (def && def.title) || t.workflow)),
    osse.el('dl', { class: 'facts' },
      osse.el('dt', null, 'คำขอ ', osse.el('span', { class: 'en' }, 'Request')),
      osse.el('dd', { class: 'mono' }, t.request_id),
      osse.el('dt', null, 'ขั้นตอน ', osse.el('span', { class: 'en' }, 'Step')),
      osse.el('dd', { class: 'mono' }, t.step),
      osse.el('dt', null, 'เริ่ม ', osse.el('span', { class: 'en' }, 'Opened')),
      osse.el('dd', null, osse.timeEl(t.opened_at)),
      osse.el('dt', null, 'กำหนดเสร็จ ', osse.el('span', { class: 'en' }, 'Due')),
      osse.el('dd', { class: 'due' }, osse.timeEl(t.due_at)),
      osse.el('dt', null, 'SLA'),
      osse.el('dd', null, osse.badge(osse.SLA, t.sla))),
    osse.el('label', { for: rid }, 'เหตุผลหรือความเห็น ',
      osse.el('span', { class: 'en' }, 'Reason or comment (the applicant reads it; say what ' +
        'to add when you return a task)')),
    reason,
    osse.el('p', { class: 'row' }, buttons, more),
    box);
  return li;
}

async function decide(li, t, outcome, reason) {
  clearProblem();
  for (const b of li.querySelectorAll('button')) b.disabled = true;
  status(`Sending ${outcome} for ${t.request_id}/${t.step}…`);
  const body = { outcome, expected_version: t.version };
  if (reason) body.reason = reason;
  let view;
  try {
    view = await osse.api(`/v1/tasks/${encodeURIComponent(t.request_id)}/` +
      `${encodeURIComponent(t.step)}/decision`, { method: 'POST', body });
  } catch (e) {
    osse.showProblem($('problem'), e); // a stale version, a step no longer open: and the fresh list
    await load();
    return;
  }
  await load();
  status(`บันทึกแล้ว · Recorded: ${outcome} of ${t.request_id}/${t.step}; ` +
    `the request is now ${view.status}.`);
}

// The tracking view the API gives this agency (SPEC §4, §8), as it is.
async function showRequest(id, box, button) {
  if (!box.hidden) {
    box.hidden = true;
    button.textContent = 'ดูคำขอ · Show the request';
    return;
  }
  let v;
  try {
    v = await osse.api(`/v1/requests/${encodeURIComponent(id)}`);
  } catch (e) {
    osse.showProblem($('problem'), e);
    return;
  }
  const form = osse.el('dl', { class: 'facts' }, Object.entries(v.form || {}).flatMap(([k, val]) => [
    osse.el('dt', { class: 'mono' }, k),
    osse.el('dd', null, typeof val === 'string' ? val : JSON.stringify(val)),
  ]));
  const steps = osse.el('ul', { class: 'pages' }, (v.steps || []).map((s) =>
    osse.el('li', null, `${s.title || s.name}: `, osse.badge(osse.STATE, s.state),
      s.agency ? ` ${s.agency}` : '')));
  osse.fill(box, osse.el('h3', null, 'แบบคำขอ ', osse.el('span', { class: 'en' }, 'Form')), form,
    osse.el('h3', null, 'ขั้นตอน ', osse.el('span', { class: 'en' }, 'Steps')),
    osse.el('p', null, osse.badge(osse.STATUS, v.status)), steps);
  box.hidden = false;
  button.textContent = 'ซ่อนคำขอ · Hide the request';
}

$('signin').addEventListener('submit', (ev) => {
  ev.preventDefault();
  osse.setToken($('token').value);
  $('token').value = '';
  signIn($('agency').value.trim());
});
$('signout').addEventListener('click', () => signedOut('ออกจากระบบแล้ว · Signed out.'));
$('reload').addEventListener('click', () => {
  clearProblem();
  load();
});

// #agency=<id> (common.js has taken #token=... already): into the box.
const frag = new URLSearchParams(location.hash.replace(/^#/, ''));
const fromFragment = frag.get('agency');
if (fromFragment) {
  sessionStorage.setItem(AGENCY_KEY, fromFragment);
  history.replaceState(null, '', location.pathname + location.search);
}
const id = sessionStorage.getItem(AGENCY_KEY) || '';
$('agency').value = id;
if (osse.token()) signIn(id);
else status('ยังไม่ได้เข้าสู่ระบบ · Not signed in.');
