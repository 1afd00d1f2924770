// dashboard.js: the SLA dashboard (SPEC §13, §10; docs/design.md "Pages").
//
// For a platform or auditor token (from the fragment #token=... through
// common.js, or the sign-in box). Nothing is shown until GET /v1/stats
// accepted the token. The table is GET /v1/stats as it is, one row per
// agency and workflow, named from GET /v1/agencies and GET /v1/workflows;
// the chart draws the last WEEKS buckets (6 on a phone) of
// GET /v1/stats?bucket=week as SVG
// made with DOM calls (the CSP allows no inline style: attributes only). A
// week's value is the sum, over that bucket's rows in the chosen scope, of
// the row's counts (a bucket leaves out the rows that are all zero).
import * as osse from '/ui/common.js';

const WEEKS = 12;
// A phone-wide screen charts the last 6 weeks, so that its labels stay legible.
const NARROW = matchMedia('(max-width: 39.99rem)');
const shown = () => (NARROW.matches ? 6 : WEEKS);
const NS = 'http://www.w3.org/2000/svg';
const SERIES = ['decided_by_person', 'decided_within_sla', 'open', 'overdue', 'breaches'];
const $ = (id) => document.getElementById(id);
let data = null; // {rows, buckets, agencies: Map, workflows: Map}

function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  e.append(...kids);
  return e;
}

function status(text) {
  $('status').textContent = text;
}

// Every entry of a catalog list, following next_cursor (bounded); the ids
// stand in for names that cannot be read.
async function every(path, key) {
  const out = new Map();
  let cursor = null;
  try {
    for (let page = 0; page < 20; page++) {
      const r = await osse.api(path + (cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''));
      for (const x of r[key]) out.set(x.id, x);
      cursor = r.next_cursor;
      if (!cursor) break;
    }
  } catch (e) {
    // names are a nicety
  }
  return out;
}

function signedOut(text) {
  osse.setToken(null);
  data = null;
  $('signin-card').hidden = false;
  $('board').hidden = true;
  $('rows').tBodies[0].replaceChildren();
  $('weeks').tBodies[0].replaceChildren();
  $('chart').replaceChildren();
  status(text);
}

async function load() {
  $('problem').hidden = true;
  status('กำลังโหลด… · Loading…');
  let all;
  let weekly;
  try {
    all = await osse.api('/v1/stats');
    weekly = await osse.api('/v1/stats?bucket=week');
  } catch (e) {
    osse.showProblem($('problem'), e);
    signedOut('ยังไม่ได้เข้าสู่ระบบ · Not signed in.');
    return;
  }
  data = {
    rows: all.rows,
    buckets: weekly.buckets.slice(-WEEKS),
    agencies: await every('/v1/agencies', 'agencies'),
    workflows: await every('/v1/workflows', 'workflows'),
  };
  $('signin-card').hidden = true;
  $('board').hidden = false;
  table();
  scopes();
  chart();
  const n = (k, word) => `${k} ${word}${k === 1 ? '' : 's'}`;
  status(`${n(data.rows.length, 'row')}; ${n(Math.min(data.buckets.length, shown()), 'week')} charted.`);
  document.body.dataset.loaded = 'true';
}

const agencyName = (id) => (data.agencies.get(id) || {}).name || id;
const workflowName = (id) => (data.workflows.get(id) || {}).title || id;
const num = (v, digits) => (v === null || v === undefined ? '—' : digits ? v.toFixed(digits) : String(v));

function table() {
  const rows = data.rows.map((r) => {
    const share = r.share_within_sla === null ? '—' : `${Math.round(r.share_within_sla * 100)}%`;
    const cells = [['open', num(r.open)], ['overdue', num(r.overdue)],
      ['decided_by_person', num(r.decided_by_person)], ['decided_within_sla', num(r.decided_within_sla)],
      ['share_within_sla', share], ['median_decision_working_hours', num(r.median_decision_working_hours, 1)],
      ['auto_approved', num(r.auto_approved)], ['deemed_approved', num(r.deemed_approved)],
      ['escalated_away', num(r.escalated_away)], ['breaches', num(r.breaches)]];
    return osse.el('tr', { dataset: { agency: r.agency, workflow: r.workflow } },
      osse.el('td', { class: 'agency' }, agencyName(r.agency), ' ', osse.el('code', { class: 'en' }, r.agency)),
      osse.el('td', { class: 'workflow' }, workflowName(r.workflow), ' ',
        osse.el('code', { class: 'en' }, r.workflow)),
      cells.map(([k, text]) => osse.el('td', {
        class: k === 'overdue' && r.overdue ? 'num warn' : 'num', dataset: { key: k },
      }, text)));
  });
  $('rows').tBodies[0].replaceChildren(...rows);
  osse.stackTable($('rows'));
  $('norows').hidden = data.rows.length > 0;
}

function scopes() {
  const opts = [osse.el('option', { value: '' }, 'ทั้งหมด · All agencies and workflows')];
  for (const a of [...new Set(data.rows.map((r) => r.agency))]) {
    opts.push(osse.el('option', { value: a }, agencyName(a)));
    for (const r of data.rows.filter((x) => x.agency === a))
      opts.push(osse.el('option', { value: `${a} ${r.workflow}` }, `— ${agencyName(a)} · ${workflowName(r.workflow)}`));
  }
  $('scope').replaceChildren(...opts);
}

function inScope(row) {
  const s = $('scope').value;
  if (!s) return true;
  const [a, w] = s.split(' ');
  return row.agency === a && (w === undefined || row.workflow === w);
}

function weekly() {
  return data.buckets.slice(-shown()).map((b) => {
    const v = { start: b.start };
    for (const k of SERIES) v[k] = 0;
    for (const r of b.rows.filter(inScope)) for (const k of SERIES) v[k] += r[k];
    return v;
  });
}

function chart() {
  const weeks = weekly();
  $('weeks').tBodies[0].replaceChildren(...weeks.map((w) => osse.el('tr', { dataset: { week: w.start } },
    osse.el('td', null, w.start.slice(0, 10)),
    SERIES.map((k) => osse.el('td', { class: 'num', dataset: { key: k } }, String(w[k]))))));
  osse.stackTable($('weeks'));
  if (!weeks.length) {
    osse.fill($('chart'), osse.el('p', { class: 'muted' }, 'No week to chart yet.'));
    return;
  }
  const H = 160;
  const top = 12;
  const left = 34;
  const slot = 46;
  const W = left + slot * shown() + 6; // one scale whatever the number of weeks
  const max = Math.max(1, ...weeks.map((w) => Math.max(w.decided_by_person, w.open)));
  const y = (v) => top + H - (H * v) / max;
  const g = svg('svg', {
    viewBox: `0 0 ${W} ${H + top + 28}`, class: 'chart', role: 'img',
    'aria-label': 'Decisions by a person, within the SLA, and open tasks, per week',
  });
  for (const v of [...new Set([0, Math.round(max / 2), max])]) {
    g.append(svg('line', { x1: left - 4, x2: W, y1: y(v), y2: y(v), stroke: '#d5dae1' }),
      svg('text', { x: left - 8, y: y(v) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#5b6470' }, String(v)));
  }
  const points = [];
  weeks.forEach((w, i) => {
    const x = left + i * slot + 8;
    const day = w.start.slice(0, 10);
    const bar = (series, dx, width, fill, words) => svg('rect', {
      x: x + dx, y: y(w[series]), width, height: y(0) - y(w[series]), fill, class: `bar ${series}`,
      'data-week': w.start, 'data-series': series, 'data-value': w[series],
    }, svg('title', null, `${day}: ${w[series]} ${words}`));
    g.append(bar('decided_by_person', 0, 30, '#7fa7d9', 'decided by a person'),
      bar('decided_within_sla', 7, 16, '#1d7a3a', 'within the SLA'),
      svg('text', { x: x + 15, y: top + H + 18, 'text-anchor': 'middle', 'font-size': 11, fill: '#5b6470' },
        day.slice(5)));
    points.push([x + 15, y(w.open), w]);
  });
  g.append(svg('polyline', {
    points: points.map(([px, py]) => `${px},${py}`).join(' '), fill: 'none', stroke: '#b3261e', 'stroke-width': 2,
  }));
  for (const [px, py, w] of points) {
    g.append(svg('circle', {
      cx: px, cy: py, r: 4, fill: '#b3261e', class: 'point open',
      'data-week': w.start, 'data-series': 'open', 'data-value': w.open,
    }, svg('title', null, `${w.start.slice(0, 10)}: ${w.open} open at the week's end`)));
  }
  osse.fill($('chart'), g);
}

$('signin').addEventListener('submit', (ev) => {
  ev.preventDefault();
  osse.setToken($('token').value);
  $('token').value = '';
  load();
});
$('signout').addEventListener('click', () => signedOut('ออกจากระบบแล้ว · Signed out.'));
$('reload').addEventListener('click', load);
$('scope').addEventListener('change', chart);
NARROW.addEventListener('change', () => data && chart());

if (osse.token()) load();
else status('ยังไม่ได้เข้าสู่ระบบ · Not signed in.');
