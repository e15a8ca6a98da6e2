// Brightline knowledge-base editor page (plain ES2020, no build step).
// SECURITY: customer questions are shown with textContent only; no HTML-string APIs.
'use strict';

const $ = (id) => document.getElementById(id);

function showError(message) {
  $('editor-error-text').textContent = message || '';
  $('editor-error').hidden = !message;
}

const KINDS = {
  not_understood: "didn't understand",
  suggestion_not_picked: 'did-you-mean not picked',
  not_helped: 'answer did not help',
  answer_then_handoff: 'answer, then a person',
  guide_handoff: 'guide ended with a person',
};
const DECISIONS = { answer: 'Answers', suggest: 'Asks "Did you mean"', none: "Says it didn't understand" };

function pairs(obj, names) {
  return Object.entries(obj || {}).map(([k, n]) => `${(names && names[k]) || k} ${n}`).join(', ');
}

function renderTry(result) {
  const head = el('p', { class: 'try-decision', 'data-testid': 'try-decision', 'data-decision': result.decision },
    el('b', { text: DECISIONS[result.decision] || result.decision }),
    result.id ? ` with ${result.id}` : '',
    ` (score ${Number(result.score).toFixed(1)}; answers at ${result.cutoffs.answer}, suggests at ${result.cutoffs.suggest}; language ${result.language})`);
  const replies = el('div', { class: 'try-replies' }, ...result.replies.map((reply) => el('div', { class: 'try-reply' },
    el('p', { class: 'try-reply-text', 'data-testid': 'try-reply', text: reply.text }),
    reply.buttons.length ? el('p', { class: 'muted', text: `Buttons: ${reply.buttons.join(' · ')}` }) : null)));
  const rows = result.candidates.map((c) => el('tr', {},
    el('td', {}, el('div', { text: c.question || c.id }), el('div', { class: 'kb-id', text: `${c.id}${c.guide ? ' (guide)' : ''} · ${c.source || ''}` })),
    el('td', { class: 'num', text: Number(c.score).toFixed(1) })));
  const table = el('table', { class: 'kb', 'data-testid': 'try-candidates' },
    el('thead', {}, el('tr', {}, el('th', { text: 'Candidate entry' }), el('th', { text: 'Score' }))),
    el('tbody', {}, ...rows));
  $('try-result').replaceChildren(head, replies, table);
}

function renderMissed(report) {
  $('missed-count').textContent = String(report.total || 0);
  $('missed-empty').hidden = report.groups.length > 0;
  $('missed-rows').replaceChildren(...report.groups.map((g) => el('tr', { 'data-testid': 'missed-group' },
    el('td', { class: 'num', text: `${g.count}×` }),
    el('td', {}, el('ul', {}, ...g.examples.map((t) => el('li', { 'data-testid': 'missed-example', text: t })))),
    el('td', { text: pairs(g.languages) }),
    el('td', { text: pairs(g.kinds, KINDS) }),
    el('td', {}, g.closest && g.closest.id
      ? el('div', {}, el('div', { text: g.closest.question || '' }), el('div', { class: 'kb-id', text: g.closest.id }))
      : el('span', { class: 'muted', text: '—' })))));
}

async function loadMissed(fresh) {
  try {
    renderMissed(await api('GET', `/api/editor/unanswered${fresh ? '?fresh=1' : ''}`));
    showError('');
  } catch (err) { showError(err.message); }
}

function slug(text) {
  return text.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
}

function suggestionNode(s) {
  const status = el('p', { class: 'muted', 'data-testid': 'suggestion-status' });
  const field = (label, node) => el('div', {}, el('label', { text: label }), node);
  const phrasing = el('input', { 'data-testid': 'suggestion-phrasing', maxlength: 500 });
  phrasing.value = s.question;
  const entry = el('input', { 'data-testid': 'suggestion-entry', maxlength: 200 });
  entry.value = (s.closest && s.closest.id) || '';
  const topic = (s.closest && s.closest.tags && s.closest.tags[0]) || 'suggested';
  const newId = el('input', { 'data-testid': 'suggestion-new-id', maxlength: 100 });
  newId.value = `${topic}-${slug(s.question)}`.slice(0, 60);
  const answer = el('textarea', { 'data-testid': 'suggestion-answer', rows: 4, maxlength: 2000 });
  answer.value = s.answer;
  const node = el('div', { class: 'suggestion', 'data-testid': 'suggestion', 'data-id': s.id },
    el('p', {}, el('b', { text: s.question })),
    el('p', { class: 'muted', text: `From ${s.agent} · language ${s.language} · the bot ${
      s.decision === 'answer' ? 'already answers it with' : 'finds closest'} ${(s.closest && s.closest.id) || '—'}` }),
    field("Customer's question (the wording to add)", phrasing),
    field('Add it to entry (id)', entry),
    field("Or a new entry: its id", newId),
    field("The new entry's answer (the agent's, edit as needed)", answer));
  const act = async (path, body, button) => {
    button.disabled = true;
    try {
      const result = await api('POST', `/api/editor/suggestions/${encodeURIComponent(s.id)}/${path}`, body);
      status.textContent = result.file ? `Saved in ${result.file}; live now.` : 'Dismissed.';
      node.setAttribute('data-done', 'true');
      for (const b of node.querySelectorAll('button')) b.disabled = true;
    } catch (err) {
      status.textContent = err.message;
      button.disabled = false;
    }
  };
  const addPhrasing = el('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'suggestion-add-phrasing', text: 'Add the wording to the entry' });
  addPhrasing.addEventListener('click', () => act('phrasing', { entry: entry.value.trim(), text: phrasing.value.trim() }, addPhrasing));
  const addEntry = el('button', { type: 'button', class: 'btn', 'data-testid': 'suggestion-add-entry', text: 'Create the new entry' });
  addEntry.addEventListener('click', () => act('entry', {
    id: newId.value.trim(), question: phrasing.value.trim(), answer: answer.value.trim(),
    tags: [topic], near: (s.closest && s.closest.id) || null,
  }, addEntry));
  const dismiss = el('button', { type: 'button', class: 'btn btn-quiet', 'data-testid': 'suggestion-dismiss', text: 'Dismiss' });
  dismiss.addEventListener('click', () => act('dismiss', {}, dismiss));
  node.append(el('div', { class: 'composer-actions' }, addPhrasing, addEntry, dismiss), status);
  return node;
}

async function loadSuggestions() {
  try {
    const data = await api('GET', '/api/editor/suggestions');
    $('suggest-count').textContent = String(data.suggestions.length);
    $('suggestions').replaceChildren(...(data.suggestions.length
      ? data.suggestions.map(suggestionNode)
      : [el('p', { class: 'muted', 'data-testid': 'suggestions-empty', text: 'No suggestions waiting.' })]));
  } catch (err) { showError(err.message); }
}

async function init() {
  const me = await api('GET', '/api/me');
  $('agent-name').textContent = me.name;
  $('console-link').hidden = !(me.roles || []).includes('agent');
  $('try-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = $('try-input').value.trim();
    if (!text) return;
    try {
      renderTry(await api('POST', '/api/editor/try', { text }));
      showError('');
    } catch (err) { showError(err.message); }
  });
  $('missed-refresh').addEventListener('click', () => loadMissed(true));
  await Promise.all([loadSuggestions(), loadMissed(false)]);
}

init().catch((err) => showError(err.message));
