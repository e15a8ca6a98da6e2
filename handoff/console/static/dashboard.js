// The team lead's dashboard (plain ES2020, no build step; Chart.js from the locked npm package).
// SECURITY: comments, names and channel names are shown with textContent only.
'use strict';

const $ = (id) => document.getElementById(id);
const charts = {};
const REASONS = {
  asked_for_human: 'Asked for a person',
  frustrated: 'Frustrated',
  sensitive_topic: 'Topic for a person',
  repeated_fallback: 'Bot did not understand',
  not_helped: 'Answer did not help',
  repeated_question: 'Asked again',
  guide_exhausted: 'Guide did not help',
  unknown: 'Other',
};
const COLORS = ['#1f6feb', '#38b2ac', '#b7791f', '#c23b3b', '#6b3fa0', '#1f8a5a', '#8a5a10', '#66707c'];

function showError(message) {
  $('dash-error-text').textContent = message || '';
  $('dash-error').hidden = !message;
}

const pct = (rate) => (rate == null ? '–' : `${(rate * 100).toFixed(1)}%`);
function dur(seconds) {
  if (seconds == null) return '–';
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function tile(label, value, detail, testid) {
  return el('div', { class: 'tile', 'data-testid': testid },
    el('div', { class: 'tile-label', text: label }),
    el('div', { class: 'tile-value', 'data-testid': testid ? `${testid}-value` : null, text: value }),
    detail ? el('div', { class: 'tile-detail', text: detail }) : null);
}

function tiles(f, prefix) {
  const csat = f.csat || {};
  return [
    tile('Conversations', String(f.conversations), `${f.handed_off} with a person`, `${prefix}-conversations`),
    tile('Contained by the bot', pct(f.containment_rate), `${f.contained} of ${f.conversations}`, `${prefix}-containment`),
    tile('Handed to a person', pct(f.handoff_rate), `${f.reached_agent} reached an agent`, `${prefix}-handoff`),
    tile('Time to an agent', dur(f.time_to_agent.median_s), `median; 90% within ${dur(f.time_to_agent.p90_s)}`, `${prefix}-time-to-agent`),
    tile('First response', dur(f.first_response.median_s), `median, by a person; 90% within ${dur(f.first_response.p90_s)}`, `${prefix}-first-response`),
    tile('Resolution time', dur(f.resolution.median_s), `median, closed by an agent (${f.closed_by_agent})`, `${prefix}-resolution`),
    tile('First-contact resolution', pct(f.first_contact_resolution), 'no new chat on the topic in 7 days', `${prefix}-fcr`),
    tile('Repeat contacts', pct(f.repeat_contact_rate), 'same topic within 7 days', `${prefix}-repeat`),
    tile('CSAT', csat.average == null ? '–' : `${csat.average.toFixed(2)} / 5`, `${csat.ratings} ratings; ${pct(csat.response_rate)} answered`, `${prefix}-csat`),
    tile('Unanswered', pct(f.unanswered_rate), `${f.unanswered} of ${f.questions} questions`, `${prefix}-unanswered`),
  ];
}

function chart(id, config) {
  if (typeof Chart === 'undefined') return; // the page still shows every figure as text
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
  charts[id] = new Chart($(id), config);
}

function drawCharts(range) {
  const days = Object.keys(range.by_day);
  const byDay = days.map((d) => range.by_day[d]);
  chart('chart-days', {
    type: 'bar',
    data: {
      labels: days.map((d) => d.slice(5)),
      datasets: [
        { label: 'Contained by the bot', data: byDay.map((f) => f.contained), backgroundColor: COLORS[1] },
        { label: 'With a person', data: byDay.map((f) => f.handed_off), backgroundColor: COLORS[0] },
      ],
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
  });
  const reasons = Object.entries(range.summary.handoff_by_reason);
  chart('chart-reasons', {
    type: 'doughnut',
    data: {
      labels: reasons.map(([r]) => REASONS[r] || r),
      datasets: [{ data: reasons.map(([, v]) => v.count), backgroundColor: COLORS }],
    },
    options: { plugins: { legend: { position: 'right' } } },
  });
  const dist = range.summary.csat.distribution;
  chart('chart-csat', {
    type: 'bar',
    data: { labels: ['1', '2', '3', '4', '5'], datasets: [{ label: 'Ratings', data: ['1', '2', '3', '4', '5'].map((s) => dist[s] || 0), backgroundColor: ['#c23b3b', '#e07b39', '#b7791f', '#38b2ac', '#1f8a5a'] }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
  chart('chart-wait', {
    type: 'line',
    data: {
      labels: days.map((d) => d.slice(5)),
      // Days nobody was handed off have no point; no line is drawn across them.
      datasets: [{ label: 'Median minutes to an agent', data: byDay.map((f) => (f.time_to_agent.median_s == null ? null : f.time_to_agent.median_s / 60)), borderColor: COLORS[0], backgroundColor: COLORS[0], spanGaps: false, pointRadius: 3 }],
    },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
  });
}

function breakdown(title, groups, names, testid) {
  const rows = Object.entries(groups).map(([name, f]) => el('tr', {},
    el('td', { text: (names && names[name]) || name }),
    el('td', { class: 'num', text: String(f.conversations) }),
    el('td', { class: 'num', text: pct(f.containment_rate) }),
    el('td', { class: 'num', text: String(f.handed_off) }),
    el('td', { class: 'num', text: dur(f.first_response.median_s) }),
    el('td', { class: 'num', text: dur(f.resolution.median_s) }),
    el('td', { class: 'num', text: f.csat.average == null ? '–' : f.csat.average.toFixed(2) }),
    el('td', { class: 'num', text: pct(f.unanswered_rate) })));
  return el('div', { class: 'breakdown' },
    el('h3', { text: title }),
    el('table', { class: 'kb dash-table', 'data-testid': testid },
      el('thead', {}, el('tr', {}, ...['', 'Chats', 'Contained', 'With a person', 'First response', 'Resolution', 'CSAT', 'Unanswered']
        .map((h, i) => el('th', { class: i ? 'num' : null, text: h })))),
      el('tbody', {}, ...(rows.length ? rows : [el('tr', {}, el('td', { class: 'muted', text: 'Nothing yet' }))]))));
}

function render(data, days) {
  $('today').replaceChildren(...tiles(data.today.summary, 'today'));
  $('summary').replaceChildren(...tiles(data.range.summary, 'range'));
  $('range-title').textContent = days === 1 ? 'Today, in detail' : `Last ${days} days`;
  $('range-dates').textContent = `${data.range.from} to ${data.range.to} (${data.range.time_zone})`;
  drawCharts(data.range);
  $('breakdowns').replaceChildren(
    breakdown('By channel', data.range.by_channel, null, 'by-channel'),
    breakdown('By team', data.range.by_team, data.teams, 'by-team'),
    breakdown('By language', data.range.by_language, null, 'by-language'),
    breakdown('By agent', data.range.by_agent, null, 'by-agent'));
  const items = data.comments.map((c) => el('li', { class: 'comment', 'data-testid': 'comment' },
    el('span', { class: 'comment-rating', text: `${c.rating}/5` }),
    el('span', { class: 'comment-text', text: c.text }),
    el('span', { class: 'muted', text: ` ${c.agent ? `· ${c.agent} ` : ''}· ${new Date(c.at * 1000).toLocaleString()}` })));
  $('comments').replaceChildren(...items);
  $('comments-empty').hidden = items.length > 0;
}

function renderLive(live) {
  $('live').replaceChildren(
    tile('Waiting now', String(live.waiting), `longest ${dur(live.longest_wait_s)}`, 'live-waiting'),
    tile('Agents online', String(live.agents.filter((a) => a.status === 'online').length), `of ${live.agents.length}`, 'live-online'),
    tile('Chats with agents', String(live.agents.reduce((n, a) => n + a.chats, 0)), `${live.agents.reduce((n, a) => n + a.capacity, 0)} slots`, 'live-chats'));
  $('agents').replaceChildren(...live.agents.map((a) => el('tr', { 'data-testid': 'agent-row' },
    el('td', { text: a.name }),
    el('td', {}, el('span', { class: `status status-${a.status}`, text: a.status })),
    el('td', { class: 'num', text: `${a.chats} / ${a.capacity}` }),
    el('td', {}, el('span', { class: 'load-bar' }, el('span', { class: 'load-fill', style: null, 'data-load': String(Math.min(100, Math.round((100 * a.chats) / Math.max(1, a.capacity)))) }))))));
  for (const fill of document.querySelectorAll('.load-fill')) fill.style.width = `${fill.dataset.load}%`;
}

function isoDay(date) {
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, '0')}-${String(date.getDate()).padStart(2, '0')}`;
}

async function load() {
  const days = Number($('range').value);
  try {
    const live = await api('GET', '/api/live');
    renderLive(live);
    const data = await api('GET', `/api/kpis?days=${days}`);
    render(data, days);
    $('csv').href = `/api/kpis.csv?from=${data.range.from}&to=${data.range.to}`;
    showError('');
  } catch (err) {
    showError(err.message);
  }
}

async function start() {
  try {
    const me = await api('GET', '/api/me');
    $('agent-name').textContent = me.name;
  } catch (_) { /* 401 already went to /login */ }
  $('range').addEventListener('change', load);
  await load();
  setInterval(load, 60000);
}

document.addEventListener('DOMContentLoaded', start);
