// Brightline live-agent console (plain ES2020, no build step).
// SECURITY: server data is only ever inserted with textContent / createTextNode /
// setAttribute on inert attributes; no HTML-string APIs are used anywhere in this file.
'use strict';

const TITLE = 'Brightline console';
const REASONS = {
  asked_for_human: 'Asked for a person',
  frustrated: 'Frustrated',
  repeated_fallback: 'Bot did not understand repeatedly',
  repeated_question: 'Asked the same again',
  not_helped: 'Answer did not help',
  sensitive_topic: 'Topic needs a person',
  guide_exhausted: 'Troubleshooting steps did not fix it',
};
const BACKOFF_MS = [1000, 2000, 5000];
const PING_MS = 25000;

// The whole client state. Render functions read from here; handlers write to it.
const state = {
  me: null,            // /api/me object
  waiting: [],         // Summary[]
  mine: [],            // Summary[]
  known: null,         // Set of conversation ids seen in the queue (null = first load)
  openId: null,        // conversation currently shown
  chat: null,          // /api/chats/{id} payload for openId
  turnKeys: new Set(), // dedupe turns arriving both by fetch and by socket
  canned: [],
  alerts: 0,           // unseen events, shown in the document title
  audio: null,         // AudioContext, created on first user gesture
  busy: false,         // an action on the open chat is in flight
  suggestFor: null,    // the closed chat whose suggestion form was prefilled
  teams: [],           // /api/teams: where a chat can be transferred
  colleagues: [],
};

const $ = (id) => document.getElementById(id);
let paneTake = null; // "Take this chat" button of the chat pane, detached when not needed

// ---------- formatting ----------

function reasonText(reason) {
  if (!reason) return 'Handoff';
  return REASONS[reason] || reason.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

function teamLabel(name) {
  const team = (state.teams || []).find((t) => t.name === name);
  return team ? team.label : name;
}

function waitText(since) {
  const mins = Math.floor((Date.now() / 1000 - since) / 60);
  if (!(mins >= 1)) return '<1 min';
  if (mins < 60) return `${mins} min`;
  return `${Math.floor(mins / 60)} h ${mins % 60} min`;
}

function timeText(epoch) {
  const d = new Date(epoch * 1000);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toDateString() === new Date().toDateString()
    ? time : `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

const fmtScore = (n) => (Number(n) || 0).toFixed(2);
const fmtPriority = (n) => (Number(n) || 0).toFixed(2);
// Priority is frustration (0..1) plus bonuses, so these cut-offs mirror the score colours.
const priorityLevel = (n) => (n >= 0.8 ? 'is-high' : n >= 0.5 ? 'is-mid' : 'is-low');
const isMine = (chat) => !!(chat && state.me && chat.state === 'assigned' && chat.agent === state.me.name);

function showError(message) {
  $('chat-error-text').textContent = message || '';
  $('chat-error').hidden = !message;
}

// ---------- alerts: beep + title badge ----------

// Browsers only allow audio after a user gesture, so the context is made lazily.
function unlockAudio() {
  if (state.audio) return;
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (Ctx) state.audio = new Ctx();
}

function beep() {
  const ctx = state.audio;
  if (!ctx) return;
  if (ctx.state === 'suspended') ctx.resume();
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  const t = ctx.currentTime;
  osc.type = 'sine';
  osc.frequency.setValueAtTime(880, t);
  osc.frequency.setValueAtTime(660, t + 0.09);
  gain.gain.setValueAtTime(0.0001, t); // ramps avoid clicks
  gain.gain.exponentialRampToValueAtTime(0.15, t + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.22);
  osc.connect(gain).connect(ctx.destination);
  osc.start(t);
  osc.stop(t + 0.25);
}

function alertAgent() {
  state.alerts += 1;
  renderTitle();
  beep();
}

function clearAlerts() {
  if (!state.alerts) return;
  state.alerts = 0;
  renderTitle();
}

function renderTitle() {
  document.title = state.alerts ? `(${state.alerts}) ${TITLE}` : TITLE;
}

// ---------- render: header ----------

function renderHeader() {
  const me = state.me;
  if (!me) return;
  $('agent-name').textContent = me.name;
  $('presence').value = me.status;
  $('editor-link').hidden = !(me.roles || []).includes('editor');
  $('presence').setAttribute('data-status', me.status);
  const active = state.known ? state.mine.filter((c) => c.state === 'assigned').length : me.active;
  $('load').textContent = `${active} / ${me.capacity} chats`;
}

function renderConnection(stateName) {
  const labels = { connecting: 'Connecting…', live: 'Live', down: 'Reconnecting…' };
  const node = $('conn');
  node.setAttribute('data-state', stateName);
  node.textContent = labels[stateName];
}

// ---------- render: queue lists ----------

function waitingItem(s) {
  const take = el('button', {
    type: 'button', class: 'btn btn-primary btn-small', 'data-testid': 'take-button', text: 'Take',
    onclick: (e) => { e.stopPropagation(); takeChat(s.conversation_id); },
  });
  return el('li', {
    class: `chat-item${s.conversation_id === state.openId ? ' is-open' : ''}`,
    'data-testid': 'queue-item', 'data-conversation-id': s.conversation_id,
    onclick: () => openChat(s.conversation_id),
  },
  el('div', { class: 'chat-item-main' },
    el('div', { class: 'chat-item-title' },
      el('span', { class: 'title-text', text: reasonText(s.reason), title: s.customer_name || 'Unknown customer' }),
      el('span', { class: `badge badge-priority ${priorityLevel(s.priority)}`, title: 'Priority (higher is served first)', 'data-testid': 'priority', text: fmtPriority(s.priority) })),
    el('div', { class: 'chat-item-meta' },
      el('span', { class: 'wait', 'data-since': s.waiting_since, 'data-testid': 'wait-time', text: waitText(s.waiting_since) }),
      el('span', { text: s.channel || '' }),
      s.team && el('span', { text: teamLabel(s.team) }),
      s.language && el('span', { text: s.language }),
      s.position != null && el('span', { class: 'position', title: 'Position in queue', text: `#${s.position}` }),
      s.returned && el('span', { class: 'badge badge-state', title: 'Came back to the queue: serve it first', text: 'back' }),
      s.offered_to && state.me && s.offered_to === state.me.name
        && el('span', { class: 'badge badge-offer', 'data-testid': 'offered-to-me', text: 'Offered to you' }))),
  take);
}

function mineItem(s) {
  return el('li', {
    class: `chat-item${s.conversation_id === state.openId ? ' is-open' : ''}`,
    'data-testid': 'my-chat-item', 'data-conversation-id': s.conversation_id,
    onclick: () => openChat(s.conversation_id),
  },
  el('div', { class: 'chat-item-main' },
    el('div', { class: 'chat-item-title' },
      el('span', { class: 'title-text', text: s.customer_name || 'Unknown customer' })),
    el('div', { class: 'chat-item-meta' },
      el('span', { text: reasonText(s.reason) }),
      el('span', { text: s.channel || '' }),
      s.state !== 'assigned' && el('span', { class: 'badge badge-state', text: s.state }))),
  s.unread > 0 && el('span', { class: 'badge badge-unread', 'data-testid': 'unread-count', title: 'Unread messages', text: s.unread }));
}

function renderList(listId, countId, items, makeItem, emptyText) {
  const list = $(listId);
  list.replaceChildren(...(items.length ? items.map(makeItem) : [el('li', { class: 'empty-row', text: emptyText })]));
  $(countId).textContent = String(items.length);
}

function followupItem(s) {
  const item = waitingItem(s);
  item.setAttribute('data-testid', 'followup-item');
  item.querySelector('.chat-item-meta').append(
    el('span', { class: 'contact', 'data-testid': 'followup-contact', title: 'Contact them here', text: s.contact }));
  return item;
}

function renderQueue() {
  renderList('queue-waiting', 'waiting-count', state.waiting.filter((s) => !s.contact), waitingItem, 'Nobody is waiting.');
  renderList('followups', 'followup-count', state.waiting.filter((s) => s.contact), followupItem, 'No follow-ups.');
  renderList('my-chats', 'mine-count', state.mine, mineItem, 'No chats assigned to you.');
  renderHeader();
}

// Wait times tick without rebuilding the lists (a rebuild could swallow a click).
function tickWaitTimes() {
  for (const node of document.querySelectorAll('[data-since]')) {
    node.textContent = waitText(Number(node.getAttribute('data-since')));
  }
}

// ---------- render: chat pane ----------

function factsLine(card) {
  const fact = (label, value) => el('span', {}, `${label} `, el('b', { text: value }));
  return el('div', { class: 'card-facts' },
    fact('Customer', card.customer_name || 'Unknown customer'),
    fact('Channel', card.channel || '—'),
    fact('Language', card.language || '—'),
    fact('Priority', card.priority == null ? '—' : fmtPriority(card.priority)),
    card.created_at ? fact('Handed over', timeText(card.created_at)) : null);
}

function scoresBlock(scores) {
  if (!scores || !scores.length) return el('p', { class: 'muted', text: 'No scores.' });
  const bars = scores.map((raw, i) => {
    const v = Math.max(0, Math.min(1, Number(raw) || 0));
    const bar = el('span', { class: `score-bar${v >= 0.7 ? ' high' : v >= 0.4 ? ' mid' : ''}` });
    bar.style.height = `${Math.round(v * 30) + 2}px`; // CSSOM, not an inline style attribute
    return el('span', { class: 'score', title: `Customer turn ${i + 1}: ${fmtScore(v)}` },
      bar, el('span', { class: 'score-num', text: v.toFixed(1) }));
  });
  const peak = Math.max(...scores.map((n) => Number(n) || 0));
  return el('div', {}, el('div', { class: 'scores', 'data-testid': 'card-scores' }, ...bars),
    el('div', { class: 'muted', text: `Peak ${fmtScore(peak)} over ${scores.length} turn${scores.length === 1 ? '' : 's'}` }));
}

function kbBlock(matches) {
  if (!matches || !matches.length) return el('p', { class: 'muted', text: 'The bot did not search the knowledge base.' });
  const rows = matches.map((m) => el('tr', {},
    el('td', {}, el('div', { text: m.query }), m.id && el('div', { class: 'kb-id', text: m.id })),
    el('td', { text: m.decision }),
    el('td', { class: 'num', text: fmtScore(m.score) })));
  return el('table', { class: 'kb', 'data-testid': 'card-kb' },
    el('thead', {}, el('tr', {}, el('th', { text: 'Query / entry' }), el('th', { text: 'Decision' }), el('th', { text: 'Score' }))),
    el('tbody', {}, ...rows));
}

function guideBlock(guide) {
  if (!guide) return null;
  const steps = (guide.steps || []).map((step, i) => el('li', {},
    el('div', { class: 'guide-asked', text: `${i + 1}. ${step.asked}` }),
    step.did ? el('div', { class: 'muted', text: step.did }) : null,
    el('div', {}, 'Answer: ', el('b', { text: step.answer || '—' }),
      step.typed ? el('span', { class: 'muted', text: ` (typed: "${step.typed}")` }) : null)));
  const body = steps.length
    ? el('ol', { class: 'guide-steps', 'data-testid': 'card-guide-steps' }, ...steps)
    : el('p', { class: 'muted', text: 'Started; no step answered yet.' });
  return el('div', { class: 'card-guide', 'data-testid': 'card-guide' },
    el('h3', {}, 'Troubleshooting guide: ', el('span', { text: guide.title || guide.id || '' })), body);
}

function renderCard() {
  const card = state.chat.card || {};
  const summary = card.summary && card.summary.length
    ? el('ul', { 'data-testid': 'card-summary' }, ...card.summary.map((line) => el('li', { text: line })))
    : el('p', { class: 'muted', text: 'No summary.' });
  $('chat-card').replaceChildren(
    el('div', { class: 'card-head' },
      el('h2', { class: 'card-reason', 'data-testid': 'card-reason', 'data-reason': card.reason || '', text: reasonText(card.reason) }),
      card.vip ? el('span', { class: 'badge badge-vip', text: 'VIP' }) : null,
      factsLine(card),
      state.chat.contact ? el('span', { class: 'contact', 'data-testid': 'card-contact', text: `Follow-up: contact them at ${state.chat.contact}` }) : null),
    el('div', { class: 'card-grid' },
      el('div', {}, el('h3', { text: 'Frustration per turn' }), scoresBlock(card.scores)),
      el('div', {}, el('h3', { text: 'Summary' }), summary),
      el('div', {}, el('h3', { text: 'Knowledge base tried' }), kbBlock(card.kb_matches))),
    guideBlock(card.guide),
    historyBlock(card.history),
    el('p', { class: 'viewers', id: 'viewers', 'data-testid': 'viewers', hidden: true }));
  renderViewers(state.chat.viewers || []);
}

function historyBlock(history) {
  if (!history || !history.count) {
    return el('p', { class: 'card-history muted', 'data-testid': 'card-history', text: 'First conversation with us.' });
  }
  const items = (history.recent || []).map((c) => el('li', {},
    el('span', { text: timeText(c.started) }),
    ' · ', el('span', { text: c.reason ? `${reasonText(c.reason)}${c.agent ? ` (${c.agent})` : ''}` : 'answered by the bot' }),
    c.rating ? el('span', { class: 'muted', text: ` · rated ${c.rating}/5` }) : null,
    c.topics && c.topics.length ? el('span', { class: 'muted', text: ` · ${c.topics.join(', ')}` }) : null));
  return el('div', { class: 'card-history', 'data-testid': 'card-history' },
    el('h3', { text: `Past conversations: ${history.count} (${history.handed_off} with a person)` }),
    el('ul', {}, ...items));
}

function renderViewers(names) {
  const node = $('viewers');
  if (!node) return;
  const others = names.filter((n) => !state.me || n !== state.me.name);
  node.textContent = others.length ? `Also viewing: ${others.join(', ')}` : '';
  node.hidden = !others.length;
}

function whoText(turn) {
  if (turn.role === 'customer') return (state.chat.card && state.chat.card.customer_name) || 'Customer';
  if (turn.role === 'agent') return turn.agent || 'Agent';
  if (turn.role === 'bot') return 'Bot';
  return 'System';
}

function noteNode(note) {
  return el('li', { class: 'turn turn-note', 'data-testid': 'note', 'data-role': 'note' },
    el('div', { class: 'turn-meta' },
      el('span', { class: 'turn-who', text: `Note by ${note.agent}` }),
      note.at ? el('time', { text: timeText(note.at) }) : null),
    el('div', { class: 'turn-text', 'data-testid': 'note-text', text: note.text || '' }));
}

// An image or document the customer sent while with a person; served by the console.
function attachmentNode(att) {
  if (!att || typeof att.id !== 'string') return null;
  const href = `/api/media/${encodeURIComponent(att.id)}`;
  const label = `${att.name || (att.kind === 'image' ? 'image' : 'document')}${att.size ? ` (${Math.ceil(att.size / 1024)} KB)` : ''}`;
  if (att.kind === 'image') {
    return el('a', { class: 'turn-attachment', href, target: '_blank', rel: 'noopener', 'data-testid': 'attachment' },
      el('img', { src: href, alt: label, class: 'turn-image' }));
  }
  return el('a', { class: 'turn-attachment', href, download: att.name || '', 'data-testid': 'attachment', text: `📎 ${label}` });
}

function turnNode(turn) {
  const buttons = turn.buttons && turn.buttons.length
    ? el('div', { class: 'turn-buttons', title: 'Buttons the bot offered' },
      ...turn.buttons.map((b) => el('span', { text: b.title })))
    : null;
  return el('li', { class: 'turn', 'data-testid': 'turn', 'data-role': turn.role },
    el('div', { class: 'turn-meta' },
      el('span', { class: 'turn-who', text: whoText(turn) }),
      turn.timestamp ? el('time', { text: timeText(turn.timestamp) }) : null),
    el('div', { class: 'turn-text', 'data-testid': 'turn-text', text: turn.text || '' }),
    attachmentNode(turn.attachment),
    buttons);
}

const turnKey = (t) => `${t.role}|${t.timestamp}|${t.agent || ''}|${t.text}`;

function renderTranscript() {
  const turns = state.chat.transcript || [];
  state.turnKeys = new Set(turns.map(turnKey));
  // Agents' notes sit among the messages by time; they never reach the customer.
  const items = [...turns.map((t) => [t.timestamp || 0, turnNode(t)]), ...(state.chat.notes || []).map((n) => [n.at || 0, noteNode(n)])];
  items.sort((a, b) => a[0] - b[0]);
  const list = $('transcript');
  list.replaceChildren(...items.map((item) => item[1]));
  list.scrollTop = list.scrollHeight;
}

function appendNote(note) {
  state.chat.notes = [...(state.chat.notes || []), note];
  const list = $('transcript');
  list.append(noteNode(note));
  list.scrollTop = list.scrollHeight;
}

// Append one live turn; keep the view pinned to the bottom only if it already was.
function appendTurn(turn) {
  const key = turnKey(turn);
  if (state.turnKeys.has(key)) return;
  state.turnKeys.add(key);
  state.chat.transcript.push(turn);
  const list = $('transcript');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  list.append(turnNode(turn));
  if (atBottom || turn.role === 'agent') list.scrollTop = list.scrollHeight;
}

function composerNote(chat) {
  if (isMine(chat)) return '';
  if (chat.state === 'waiting') return 'This customer is waiting. Take the chat to reply.';
  if (chat.state === 'closed') return 'This chat is closed.';
  if (chat.state === 'assigned') return `${chat.agent || 'Another agent'} is handling this chat.`;
  return 'The bot is handling this conversation.';
}

function renderControls() {
  const chat = state.chat;
  const mine = isMine(chat);
  const note = composerNote(chat);
  for (const id of ['reply-send', 'canned', 'handback', 'close-chat', 'transfer-open']) {
    $(id).disabled = !mine || state.busy;
  }
  $('reply-input').disabled = state.busy || chat.state === 'closed' && !mine;
  $('note-send').disabled = state.busy;
  const followup = !!chat.contact && (chat.state === 'waiting' || mine);
  $('followup-done').hidden = !followup;
  $('followup-done').disabled = state.busy;
  if (!mine) $('transfer').hidden = true;
  $('composer-note').textContent = note;
  $('composer-note').hidden = !note;
  // The pane's take button is only in the DOM for waiting chats, so exactly one is findable.
  if (chat.state === 'waiting') {
    paneTake.disabled = state.busy;
    if (!paneTake.isConnected) $('handback').before(paneTake);
  } else {
    paneTake.remove();
  }
}

function renderSuggest() {
  const chat = state.chat;
  const show = !!(chat && state.me && chat.state === 'closed' && chat.agent === state.me.name
    && chat.suggestion !== undefined);
  $('suggest').hidden = !show;
  // Prefill once per chat, from the server's pick of the question and the answer to it
  // (sent with a closed chat), then leave the agent's edits alone.
  if (!show || state.suggestFor === state.openId) return;
  state.suggestFor = state.openId;
  const found = chat.suggestion;
  $('suggest-question').value = found ? found.question : '';
  $('suggest-answer').value = found ? found.answer : '';
  $('suggest-status').textContent = '';
  $('suggest-send').disabled = false;
}

async function sendSuggestion() {
  const question = $('suggest-question').value.trim();
  const answer = $('suggest-answer').value.trim();
  if (!question || !answer) { $('suggest-status').textContent = 'Fill in both the question and the answer.'; return; }
  $('suggest-send').disabled = true;
  try {
    await api('POST', `/api/chats/${encodeURIComponent(state.openId)}/suggest`, { question, answer });
    $('suggest-status').textContent = 'Sent to the editors. Thank you!';
  } catch (err) {
    $('suggest-send').disabled = false;
    $('suggest-status').textContent = err.message;
  }
}

function renderChat() {
  const open = !!(state.openId && state.chat);
  $('chat').hidden = !open;
  $('empty').hidden = open;
  document.body.classList.toggle('chat-open', open); // on a phone: the chat instead of the lists
  if (!open) return;
  renderCard();
  renderTranscript();
  renderControls();
  renderSuggest();
}

function renderCanned() {
  const select = $('canned');
  select.replaceChildren(el('option', { value: '', text: state.canned.length ? 'Canned responses…' : 'No canned responses' }),
    ...state.canned.map((c, i) => el('option', { value: i, title: c.text, text: c.title })));
}

// ---------- data loading ----------

async function loadMe() {
  state.me = await api('GET', '/api/me');
  renderHeader();
}

// Applies a queue snapshot (from GET or socket) and raises an alert for chats not seen before.
function applyQueue(data) {
  const waiting = data.waiting || [];
  const mine = data.mine || [];
  const ids = new Set([...waiting, ...mine].map((s) => s.conversation_id));
  if (state.known) {
    const fresh = [...ids].filter((id) => !state.known.has(id));
    if (fresh.length) alertAgent();
  }
  state.known = ids;
  state.waiting = waiting;
  // The open chat counts as read, whatever the server still thinks.
  state.mine = mine.map((s) => (s.conversation_id === state.openId ? { ...s, unread: 0 } : s));
  renderQueue();
}

async function loadQueue() {
  applyQueue(await api('GET', '/api/queue'));
}

async function loadChat(id) {
  const data = await api('GET', `/api/chats/${encodeURIComponent(id)}`);
  if (id !== state.openId) return; // the agent clicked elsewhere meanwhile
  data.transcript = data.transcript || [];
  state.chat = data;
  renderChat();
}

async function loadCanned() {
  try {
    state.canned = (await api('GET', '/api/canned')) || [];
  } catch (_) {
    state.canned = []; // canned replies are a convenience; the console works without them
  }
  renderCanned();
}

// The server counts unread until the chat is fetched again; a quiet fetch resets it
// without re-rendering (which would jump the transcript while the agent scrolls).
function markRead(id) {
  api('GET', `/api/chats/${encodeURIComponent(id)}`).catch(() => {});
}

// ---------- actions ----------

async function openChat(id) {
  if (id !== state.openId) {
    state.openId = id;
    state.chat = null;
    $('reply-input').value = '';
    showError('');
  }
  clearAlerts();
  sendViewing();
  state.mine = state.mine.map((s) => (s.conversation_id === id ? { ...s, unread: 0 } : s));
  renderQueue();
  try {
    await loadChat(id);
  } catch (err) {
    showError(err.message);
    if (!state.chat) renderChat(); // do not leave the previous chat on screen
  }
}

async function takeChat(id) {
  showError('');
  state.busy = true;
  if (state.chat) renderControls();
  try {
    await api('POST', `/api/chats/${encodeURIComponent(id)}/claim`);
    state.busy = false;
    await openChat(id);
    $('reply-input').focus();
  } catch (err) {
    showError(err.message); // e.g. 409: another agent was faster
    if (id === state.openId) loadChat(id).catch(() => {});
  } finally {
    state.busy = false;
    if (state.chat) renderControls();
    loadQueue().catch(() => {});
  }
}

// Runs a POST on the open chat, then refreshes it and the queue.
async function chatAction(path, body) {
  const id = state.openId;
  if (!id || state.busy) return false;
  showError('');
  state.busy = true;
  renderControls();
  let ok = false;
  try {
    await api('POST', `/api/chats/${encodeURIComponent(id)}/${path}`, body);
    ok = true;
  } catch (err) {
    showError(err.message);
  }
  state.busy = false;
  if (state.openId === id) {
    await loadChat(id).catch((err) => showError(err.message));
    if (state.chat) renderControls();
  }
  loadQueue().catch(() => {});
  return ok;
}

async function sendReply() {
  const input = $('reply-input');
  const text = input.value.trim();
  if (!text || !isMine(state.chat)) return;
  const id = state.openId;
  // Sending again after an error reuses the reply's id, so a reply that did go out the
  // first time (only the confirmation was lost) is not delivered twice.
  const pending = state.pendingReply;
  const rid = pending && pending.chat === id && pending.text === text
    ? pending.rid : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
  state.pendingReply = { chat: id, text, rid };
  if (await chatAction('reply', { text, id: rid })) {
    state.pendingReply = null;
    if (state.openId === id && input.value.trim() === text) input.value = '';
    input.focus();
  }
}

function closeChat() {
  if (!window.confirm('Close this chat? The customer will get the satisfaction survey.')) return;
  chatAction('close');
}

// Inserts the canned text at the cursor so the agent can still edit around it.
function insertCanned() {
  const select = $('canned');
  const item = select.value === '' ? null : state.canned[Number(select.value)];
  select.value = '';
  if (!item) return;
  const input = $('reply-input');
  const { selectionStart: start, selectionEnd: end, value } = input;
  input.value = value.slice(0, start) + item.text + value.slice(end);
  input.focus();
  input.selectionStart = input.selectionEnd = start + item.text.length;
}

async function setPresence() {
  const select = $('presence');
  try {
    state.me = await api('POST', '/api/me/status', { status: select.value });
  } catch (err) {
    showError(`Could not change status: ${err.message}`);
  }
  renderHeader();
}

// ---------- live updates (WebSocket) ----------

const socket = { ws: null, attempt: 0, ping: null, everOpen: false };
const SESSION_ENDED = 4401; // close code the server uses when the session is no longer valid

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/ws`);
  socket.ws = ws;
  ws.addEventListener('open', onSocketOpen);
  ws.addEventListener('message', (e) => {
    try { handleSocketMessage(JSON.parse(e.data)); } catch (err) { console.error('bad socket message', err); }
  });
  ws.addEventListener('close', onSocketClose);
}

function onSocketOpen() {
  renderConnection('live');
  const reconnect = socket.everOpen;
  socket.everOpen = true;
  socket.attempt = 0;
  clearInterval(socket.ping);
  socket.ping = setInterval(() => {
    if (socket.ws && socket.ws.readyState === WebSocket.OPEN) socket.ws.send(JSON.stringify({ type: 'ping' }));
  }, PING_MS);
  // Anything pushed while we were disconnected is lost, so resync from the API.
  if (state.openId) sendViewing();
  if (reconnect) {
    loadQueue().catch(() => {});
    if (state.openId) loadChat(state.openId).catch(() => {});
  }
}

function onSocketClose(e) {
  if (e && e.code === SESSION_ENDED) { // password changed, account removed or logged out
    location.href = '/login';
    return;
  }
  clearInterval(socket.ping);
  renderConnection('down');
  const delay = BACKOFF_MS[Math.min(socket.attempt, BACKOFF_MS.length - 1)];
  socket.attempt += 1;
  // A socket that keeps failing may mean the session expired; api() redirects on 401.
  if (socket.attempt > 1) api('GET', '/api/me').catch(() => {});
  setTimeout(connect, delay);
}

function handleSocketMessage(msg) {
  if (msg.type === 'queue') applyQueue(msg);
  else if (msg.type === 'message') onLiveTurn(msg.conversation_id, msg.message);
  else if (msg.type === 'chat_state') onChatState(msg);
  else if (msg.type === 'offer') { alertAgent(); loadQueue().catch(() => {}); }
  else if (msg.type === 'note' && msg.conversation_id === state.openId && state.chat) appendNote(msg.note);
  else if (msg.type === 'viewers' && msg.conversation_id === state.openId) renderViewers(msg.agents || []);
  else if (msg.type === 'typing' && msg.conversation_id === state.openId) showCustomerTyping();
}

let searchTimer = null;
function searchItem(s) {
  return el('li', {
    class: 'chat-item', 'data-testid': 'search-item', 'data-conversation-id': s.conversation_id,
    onclick: () => openChat(s.conversation_id),
  },
  el('div', { class: 'chat-item-main' },
    el('div', { class: 'chat-item-title' }, el('span', { class: 'title-text', text: s.customer_name || s.conversation_id })),
    el('div', { class: 'chat-item-meta' },
      el('span', { text: reasonText(s.reason) }),
      el('span', { text: timeText(s.waiting_since) }),
      el('span', { class: 'badge badge-state', text: s.state }),
      s.agent && el('span', { text: s.agent }))));
}

function searchChats() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const q = $('search').value.trim();
    const list = $('search-results');
    if (!q) { list.hidden = true; list.replaceChildren(); return; }
    try {
      const data = await api('GET', `/api/search?q=${encodeURIComponent(q)}`);
      const rows = data.results.map(searchItem);
      list.replaceChildren(...(rows.length ? rows : [el('li', { class: 'empty-row', text: 'No chat matches.' })]));
      list.hidden = false;
    } catch (err) {
      showError(err.message);
    }
  }, 300);
}

let typingTimer = null;
function showCustomerTyping() {
  $('customer-typing').hidden = false;
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => { $('customer-typing').hidden = true; }, 5000);
}

// The customer's widget shows "typing" while the agent writes a reply (at most every 2 s).
let typingSentAt = 0;
function tellTyping() {
  if (!isMine(state.chat) || !socket.ws || socket.ws.readyState !== WebSocket.OPEN) return;
  if (Date.now() - typingSentAt < 2000) return;
  typingSentAt = Date.now();
  socket.ws.send(JSON.stringify({ type: 'typing', conversation_id: state.openId }));
}

// Tell the server which chat this console shows, so colleagues looking at it see us.
function sendViewing() {
  if (socket.ws && socket.ws.readyState === WebSocket.OPEN) {
    socket.ws.send(JSON.stringify({ type: 'viewing', conversation_id: state.openId }));
  }
}

async function sendNote() {
  const text = $('reply-input').value.trim();
  const id = state.openId;
  if (!text || !id) return;
  try {
    await api('POST', `/api/chats/${encodeURIComponent(id)}/notes`, { text });
    $('reply-input').value = ''; // the note arrives over the socket, for every console showing the chat
  } catch (err) {
    showError(`Note not saved: ${err.message}`);
  }
}

async function loadTeams() {
  try {
    const data = await api('GET', '/api/teams');
    state.teams = data.teams || [];
    state.colleagues = (data.agents || []).filter((a) => !state.me || a.name !== state.me.name);
  } catch (_) { /* transfers need it; the rest of the console works without */ }
}

function openTransfer() {
  const select = $('transfer-to');
  select.replaceChildren(
    el('optgroup', { label: 'Team' }, ...state.teams.map((t) => el('option', { value: `team:${t.name}`, text: t.label }))),
    el('optgroup', { label: 'Colleague' }, ...state.colleagues.map((a) => el('option', { value: `agent:${a.name}`, text: `${a.name} (${a.status})` }))));
  $('transfer-note').value = '';
  $('transfer').hidden = false;
  $('transfer-note').focus();
}

async function sendTransfer() {
  const [kind, name] = $('transfer-to').value.split(/:(.*)/s);
  const body = { note: $('transfer-note').value.trim() };
  body[kind === 'team' ? 'team' : 'agent'] = name;
  const ok = await chatAction('transfer', body);
  if (ok) $('transfer').hidden = true;
}

function onLiveTurn(id, turn) {
  if (!turn) return;
  const isOpen = id === state.openId && state.chat;
  if (isOpen) appendTurn(turn);
  if (turn.role !== 'customer') return;
  if (isOpen && isMine(state.chat)) markRead(id);
  const mineSummary = state.mine.find((s) => s.conversation_id === id);
  if (!isOpen && mineSummary) {
    mineSummary.unread = (mineSummary.unread || 0) + 1; // the next queue push will confirm it
    renderQueue();
  }
  if ((!isOpen && mineSummary) || (isOpen && document.hidden)) alertAgent();
}

function onChatState(msg) {
  if (msg.conversation_id !== state.openId || !state.chat) return;
  state.chat.state = msg.state;
  state.chat.agent = msg.agent;
  renderControls();
}

// ---------- wiring ----------

function bindEvents() {
  $('reply-input').addEventListener('keydown', (e) => {
    // Enter sends, Shift+Enter is a newline; ignore Enter that confirms an IME composition.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendReply();
    }
  });
  $('reply-send').addEventListener('click', sendReply);
  $('back-to-list').addEventListener('click', () => {
    state.openId = null;
    state.chat = null;
    sendViewing();
    renderChat();
    renderQueue();
  });
  $('note-send').addEventListener('click', sendNote);
  $('reply-input').addEventListener('input', tellTyping);
  $('search').addEventListener('input', searchChats);
  $('followup-done').addEventListener('click', () => chatAction('followup/done'));
  $('transfer-open').addEventListener('click', openTransfer);
  $('transfer-send').addEventListener('click', sendTransfer);
  $('transfer-cancel').addEventListener('click', () => { $('transfer').hidden = true; });
  $('handback').addEventListener('click', () => chatAction('handback'));
  $('close-chat').addEventListener('click', closeChat);
  $('suggest-send').addEventListener('click', sendSuggestion);
  paneTake = $('take-chat');
  paneTake.addEventListener('click', () => takeChat(state.openId));
  paneTake.remove();
  $('canned').addEventListener('change', insertCanned);
  $('presence').addEventListener('change', setPresence);
  $('chat-error-dismiss').addEventListener('click', () => showError(''));
  window.addEventListener('focus', clearAlerts);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) clearAlerts(); });
  for (const type of ['pointerdown', 'keydown']) {
    window.addEventListener(type, unlockAudio, { capture: true, passive: true });
  }
}

async function initConsole() {
  bindEvents();
  renderTitle();
  try {
    await loadMe();
  } catch (err) {
    showError(err.message);
    return;
  }
  connect();
  loadCanned();
  loadTeams();
  loadQueue().catch((err) => showError(err.message));
  setInterval(tickWaitTimes, 15000);
}

function initLogin() {
  const params = new URLSearchParams(location.search);
  $('login-error').hidden = params.get('error') !== '1';
  $('login-locked').hidden = params.get('error') !== 'locked';
  const seconds = parseInt(params.get('retry') || '', 10);
  if (seconds > 0) $('login-retry').textContent = seconds === 1 ? '1 second' : `${seconds} seconds`;
}

if ($('login-form')) initLogin();
else initConsole();
