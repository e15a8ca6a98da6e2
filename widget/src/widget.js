// Brightline website chat widget (plain ES2020, no build step).
//
// Embed with one tag, plus an optional config object before it:
//   <script>window.BrightlineChatConfig = { title: 'Brightline support' };</script>
//   <script src="https://BOT_HOST/webhooks/webchat/widget.js" defer></script>
//
// SECURITY: text from the server and the customer is only inserted with textContent /
// createTextNode / setAttribute on inert attributes. Links are <a> elements built with
// textContent and an http(s) href. No HTML-string API is used anywhere in this file.
(() => {
  'use strict';

  if (window.BrightlineChat && window.BrightlineChat.version) return; // embedded twice

  const VERSION = '1.0.0';
  const KEYS = { session: 'brightline.session', token: 'brightline.token', outbox: 'brightline.outbox', open: 'brightline.open' };
  const ACK_TIMEOUT_MS = 15000;   // no ack by then: keep the message and send it again
  const TYPING_MS = 15000;        // the typing dots give up after this long
  const AGENT_TYPING_MS = 6000;   // an agent's "typing" lasts this long unless it comes again
  const NO_HISTORY_MS = 3000;     // a server that sends no history: start sending anyway
  let MAX_MESSAGE = 2000;         // the server says its own limit in session_confirm
  const HUMAN_PAYLOAD = '/request_human';
  const HUMAN_TITLE = 'Talk to a person';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const ICONS = { // 24x24 stroke paths, several separated by "|"
    chat: 'M21 11.5a8.4 8.4 0 0 1-.9 3.8 8.5 8.5 0 0 1-7.6 4.7 8.4 8.4 0 0 1-3.8-.9L3 21l1.9-5.7a8.4 8.4 0 0 1-.9-3.8 8.5 8.5 0 0 1 4.7-7.6 8.4 8.4 0 0 1 3.8-.9h.5a8.5 8.5 0 0 1 8 8z',
    close: 'M18 6 6 18|M6 6l12 12',
    down: 'm6 9 6 6 6-6',
    send: 'M22 2 11 13|M22 2l-7 20-4-9-9-4z',
    person: 'M20 21v-2a4 4 0 0 0-4-4H8a4 4 0 0 0-4 4v2|M12 3a4 4 0 1 0 0 8 4 4 0 0 0 0-8z',
    offline: 'M1 1l22 22|M16.7 11.1A10.9 10.9 0 0 1 19 12.6|M5 12.6a10.9 10.9 0 0 1 5.2-2.5|M10.7 5.1A16 16 0 0 1 22.6 9|M1.4 9a15.9 15.9 0 0 1 4.7-2.9|M8.5 16.1a6 6 0 0 1 7 0|M12 20h0',
  };

  // ---------- configuration ----------

  const script = document.currentScript;
  const given = (window.BrightlineChatConfig && typeof window.BrightlineChatConfig === 'object')
    ? window.BrightlineChatConfig : {};
  const text = (value, fallback) => (typeof value === 'string' && value.trim() ? value.trim() : fallback);

  function defaultServer() {
    try { return new URL(script.src, location.href).origin; } catch (_) { return location.origin; }
  }

  const config = {
    serverUrl: text(given.serverUrl, script && script.src ? defaultServer() : location.origin).replace(/\/+$/, ''),
    title: text(given.title, 'Brightline support'),
    greeting: text(given.greeting,
      "Hi! I'm Brightline's virtual assistant. Ask me about your bill, plan, order, delivery, returns, outages or devices."),
    customerName: text(given.customerName, ''),
    primaryColor: text(given.primaryColor, ''),
    suggestions: Array.isArray(given.suggestions) ? given.suggestions.filter((s) => typeof s === 'string')
      : ['How can I pay my bill?', 'Where is my order?', 'Is there an outage near me?'],
  };
  // serverUrl may carry a path prefix (a reverse proxy at https://example.com/bot).
  const server = new URL(config.serverUrl, location.href);
  const prefix = server.pathname.replace(/\/+$/, '');
  const asset = (name) => `${config.serverUrl}/webhooks/webchat/${name}`;

  // ---------- storage (private windows may refuse; the chat still works without it) ----------

  const store = {
    get(key) { try { return localStorage.getItem(key); } catch (_) { return null; } },
    set(key, value) { try { localStorage.setItem(key, value); } catch (_) { /* not persisted */ } },
    json(key, fallback) {
      try { const v = JSON.parse(store.get(key)); return v == null ? fallback : v; } catch (_) { return fallback; }
    },
  };

  // ---------- state ----------

  const state = {
    socket: null,
    sessionId: store.get(KEYS.session),
    token: store.get(KEYS.token),  // proves the server gave us this session; never guessed
    ready: false,          // session confirmed and history shown: the outbox may be sent
    online: false,
    everConnected: false,
    outbox: store.json(KEYS.outbox, []).filter((m) => m && m.client_id && typeof m.message === 'string'),
    sending: 0,            // token of the emit awaiting its ack (0 = none)
    seq: 0,
    open: store.get(KEYS.open) === '1',
    unread: 0,
    typingTimer: null,
    historyTimer: null,
    loading: false,        // socket.io-client is being loaded
  };
  const ui = {};

  const saveOutbox = () => store.set(KEYS.outbox, JSON.stringify(state.outbox));
  const newId = () => (window.crypto && crypto.randomUUID
    ? crypto.randomUUID() : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`);

  // ---------- tiny DOM helpers (text only, never HTML) ----------

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value == null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = String(value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, String(value)); // data-*, aria-*, type, title, id, for only
    }
    for (const child of children) {
      if (child == null || child === false) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  function icon(name) {
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    svg.setAttribute('class', `blw-icon blw-icon-${name}`);
    for (const d of ICONS[name].split('|')) {
      const path = document.createElementNS(SVG_NS, 'path');
      path.setAttribute('d', d);
      svg.append(path);
    }
    return svg;
  }

  // Text with http(s) links made clickable; everything else stays plain text.
  const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  function richText(node, value) {
    const source = String(value || '');
    let last = 0;
    for (const match of source.matchAll(URL_RE)) {
      let url = match[0];
      const trailing = url.match(/[.,;:!?)\]}'"]+$/); // sentence punctuation is not part of the link
      if (trailing) url = url.slice(0, -trailing[0].length);
      const start = match.index;
      if (start > last) node.append(document.createTextNode(source.slice(last, start)));
      let safe = null;
      try {
        const parsed = new URL(url);
        if (parsed.protocol === 'http:' || parsed.protocol === 'https:') safe = parsed.href;
      } catch (_) { /* not a URL after all */ }
      node.append(safe ? el('a', { href: safe, target: '_blank', rel: 'noopener noreferrer nofollow', text: url })
        : document.createTextNode(url));
      last = start + url.length;
    }
    if (last < source.length) node.append(document.createTextNode(source.slice(last)));
    return node;
  }

  function timeText(epoch) {
    const n = Number(epoch);
    if (!n) return '';
    return new Date(n * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  const displayName = (name) => String(name).charAt(0).toUpperCase() + String(name).slice(1);
  const isCsat = (buttons) => Array.isArray(buttons) && buttons.length === 5
    && buttons.every((b, i) => b && String(b.title).trim() === String(i + 1));
  const csatLabel = (score) => `${score} ★`;

  // What a customer bubble shows for a button press in the history: the server stores the
  // payload (or "[pressed a button: intent]"), the customer saw the button's title.
  function buttonTitle(turn, buttons) {
    if (typeof turn.button_title === 'string' && turn.button_title) return turn.button_title;
    const payload = String(turn.text);
    const list = buttons || [];
    const hit = list.find((b) => b && b.payload === payload);
    if (hit) return isCsat(list) ? csatLabel(String(hit.title).trim()) : String(hit.title);
    const score = payload.match(/^\/csat\{.*"csat_score":\s*"?([1-5])/);
    if (score) return csatLabel(score[1]);
    const intent = (payload.match(/^\/(\w+)/) || payload.match(/^\[pressed a button: (\w+)\]$/) || [])[1];
    if (intent === 'request_human') return HUMAN_TITLE;
    if (intent === 'csat') return 'Sent a rating';
    return 'Chose an option';
  }

  // ---------- build the DOM ----------

  function build() {
    const panelId = `blw-panel-${newId().slice(0, 8)}`;
    const inputId = `${panelId}-input`;
    ui.root = el('div', { class: 'blw-root', 'data-state': 'connecting' });
    ui.root.style.visibility = 'hidden'; // until our stylesheet has loaded
    if (config.primaryColor && window.CSS && CSS.supports('color', config.primaryColor)) {
      ui.root.style.setProperty('--blw-primary', config.primaryColor);
    }

    ui.status = el('p', { class: 'blw-status', 'data-testid': 'blw-status', role: 'status', 'aria-live': 'polite' });
    ui.human = el('button', {
      type: 'button', class: 'blw-human', 'data-testid': 'blw-human', 'aria-label': HUMAN_TITLE,
      title: 'Ask for a person from our support team',
      onclick: () => send(HUMAN_PAYLOAD, HUMAN_TITLE),
    }, icon('person'), el('span', { text: HUMAN_TITLE }));
    const minimize = el('button', {
      type: 'button', class: 'blw-icon-button', 'aria-label': 'Minimise chat', title: 'Minimise',
      onclick: () => setOpen(false),
    }, icon('down'));

    ui.typing = el('div', { class: 'blw-typing', 'data-testid': 'blw-typing', hidden: '' },
      el('span', { class: 'blw-sr', text: 'Brightline is typing' }),
      el('span', { class: 'blw-dot', 'aria-hidden': 'true' }), el('span', { class: 'blw-dot', 'aria-hidden': 'true' }),
      el('span', { class: 'blw-dot', 'aria-hidden': 'true' }));
    ui.messages = el('div', {
      class: 'blw-messages', 'data-testid': 'blw-messages', role: 'log', 'aria-live': 'polite',
      'aria-label': 'Conversation',
    }, ui.typing);

    ui.banner = el('div', { class: 'blw-banner', hidden: '' }, icon('offline'),
      el('span', { text: "You're offline. Messages you write now are sent when the connection is back." }));

    ui.input = el('textarea', {
      id: inputId, class: 'blw-input', 'data-testid': 'blw-input', rows: 1, maxlength: MAX_MESSAGE,
      placeholder: 'Write a message…', autocomplete: 'off',
      onkeydown: (e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
      },
      oninput: () => { autosize(); tellTyping(); },
    });
    ui.send = el('button', { type: 'submit', class: 'blw-send', 'data-testid': 'blw-send', 'aria-label': 'Send' },
      icon('send'));
    const composer = el('form', {
      class: 'blw-composer', onsubmit: (e) => { e.preventDefault(); submit(); },
    }, el('label', { class: 'blw-sr', for: inputId, text: 'Your message' }), ui.input, ui.send);

    ui.panel = el('section', {
      id: panelId, class: 'blw-panel', 'data-testid': 'blw-panel', role: 'dialog', 'aria-label': config.title,
      hidden: '', onkeydown: (e) => { if (e.key === 'Escape') { setOpen(false); ui.launcher.focus(); } },
    },
    el('header', { class: 'blw-header' },
      el('div', { class: 'blw-header-row' },
        el('div', { class: 'blw-brand', 'aria-hidden': 'true' }, el('span', { text: 'B' })),
        el('div', { class: 'blw-heading' }, el('h2', { class: 'blw-title', text: config.title }), ui.status),
        minimize),
      el('div', { class: 'blw-header-row blw-header-actions' },
        el('p', { class: 'blw-tagline', text: 'Replies in seconds, 24/7' }), ui.human)),
    ui.banner, ui.messages, composer);

    ui.badge = el('span', { class: 'blw-badge', 'aria-hidden': 'true', hidden: '' });
    ui.launcher = el('button', {
      type: 'button', class: 'blw-launcher', 'data-testid': 'blw-launcher', 'aria-controls': panelId,
      onclick: () => setOpen(!state.open),
    }, icon('chat'), icon('close'), ui.badge);

    ui.root.append(ui.panel, ui.launcher);
    document.body.append(ui.root);
  }

  function loadStylesheet() {
    const href = asset('widget.css');
    const show = () => { ui.root.style.visibility = ''; };
    const existing = document.querySelector(`link[data-blw-style]`);
    if (existing) { show(); return; }
    const link = el('link', { rel: 'stylesheet', href, 'data-blw-style': '' });
    link.addEventListener('load', show);
    link.addEventListener('error', () => console.warn('Brightline chat: could not load', href));
    document.head.append(link);
  }

  function autosize() {
    ui.input.style.height = 'auto';
    ui.input.style.height = `${Math.min(ui.input.scrollHeight, 120)}px`;
  }

  // ---------- open / close ----------

  function setOpen(open, { focus = true } = {}) {
    state.open = open;
    store.set(KEYS.open, open ? '1' : '0');
    ui.panel.hidden = !open;
    ui.root.classList.toggle('blw-is-open', open);
    ui.launcher.setAttribute('aria-expanded', String(open));
    ui.launcher.setAttribute('aria-label', open ? 'Close chat' : 'Chat with Brightline');
    if (open) {
      state.unread = 0;
      renderBadge();
      connect();
      scrollDown();
      if (focus) ui.input.focus({ preventScroll: true });
    }
  }

  function renderBadge() {
    ui.badge.hidden = state.unread === 0;
    ui.badge.textContent = state.unread > 9 ? '9+' : String(state.unread);
  }

  // ---------- render messages ----------

  function scrollDown() {
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function add(node) {
    ui.messages.insertBefore(node, ui.typing);
    scrollDown();
    return node;
  }

  function buttonsNode(buttons, used, chosenPayload) {
    const stars = isCsat(buttons);
    const group = el('div', {
      class: stars ? 'blw-buttons blw-stars' : 'blw-buttons', role: 'group',
      'aria-label': stars ? 'Rate the help you got from 1 (poor) to 5 (excellent)' : 'Suggested replies',
    });
    buttons.forEach((b, i) => {
      const title = String(b.title == null ? '' : b.title);
      const payload = String(b.payload == null ? title : b.payload);
      const props = {
        type: 'button', class: stars ? 'blw-chip blw-star' : 'blw-chip', 'data-testid': 'blw-button',
        'data-payload': payload,
        onclick: () => {
          if (group.classList.contains('blw-used')) return;
          useButtons(group, btn);
          send(payload, stars ? csatLabel(i + 1) : title);
        },
      };
      const btn = stars
        ? el('button', { ...props, 'data-score': i + 1, 'aria-label': `${i + 1} out of 5`, title: `${i + 1} out of 5` },
          el('span', { class: 'blw-star-glyph', 'aria-hidden': 'true', text: '★' }),
          el('span', { class: 'blw-star-num', text: title.trim() }))
        : el('button', props, title);
      group.append(btn);
    });
    if (used) {
      const chosen = [...group.children].find((b) => b.getAttribute('data-payload') === chosenPayload);
      useButtons(group, chosen || null);
    }
    return group;
  }

  // Buttons answer one question: once used (or once the customer wrote something else) they rest.
  function useButtons(group, chosen) {
    group.classList.add('blw-used');
    for (const btn of group.querySelectorAll('button')) {
      btn.disabled = true;
      if (btn === chosen) btn.classList.add('blw-chosen');
    }
    if (chosen && chosen.classList.contains('blw-star')) {
      let star = chosen;
      while (star) { star.classList.add('blw-on'); star = star.previousElementSibling; }
    }
  }

  function retireButtons() {
    for (const group of ui.messages.querySelectorAll('.blw-buttons:not(.blw-used)')) useButtons(group, null);
  }

  function messageNode(turn, { buttonsUsed = false, chosenPayload = null } = {}) {
    const role = turn.role === 'bot' && turn.agent ? 'agent' : turn.role;
    const body = String(turn.text == null ? '' : turn.text);
    const queue = role !== 'customer' && /in the queue/i.test(body);
    const node = el('div', {
      class: `blw-msg blw-msg-${role}${queue ? ' blw-msg-queue' : ''}`, 'data-testid': 'blw-message', 'data-role': role,
    });
    if (role === 'agent') {
      node.append(el('div', { class: 'blw-author' },
        el('span', { class: 'blw-author-avatar', 'aria-hidden': 'true', text: displayName(turn.agent || 'A').charAt(0) }),
        el('span', { text: `${displayName(turn.agent || 'Agent')} · Brightline support` })));
    }
    if (body) {
      const bubble = richText(el('div', { class: 'blw-bubble', title: timeText(turn.timestamp) || null }), body);
      node.append(bubble);
    }
    if (Array.isArray(turn.buttons) && turn.buttons.length && role !== 'customer') {
      node.append(buttonsNode(turn.buttons, buttonsUsed, chosenPayload));
    }
    return node;
  }

  function customerNode(item, sendState) {
    const node = messageNode({ role: 'customer', text: item.title || item.message, timestamp: item.ts });
    node.setAttribute('data-client-id', item.client_id);
    node.setAttribute('data-message', item.message);
    node.setAttribute('data-title', item.title || item.message);
    setSendState(node, sendState);
    return node;
  }

  function setSendState(node, sendState, error) {
    node.setAttribute('data-state', sendState);
    const old = node.querySelector('.blw-receipt');
    if (old) old.remove();
    if (sendState === 'pending') {
      node.append(el('div', {
        class: `blw-receipt${state.online ? ' blw-receipt-slow' : ''}`, // "Sending…" only if it takes a while
        text: state.online ? 'Sending…' : 'Waiting for connection…',
      }));
    } else if (sendState === 'failed') {
      node.append(el('div', { class: 'blw-receipt blw-receipt-failed' },
        el('span', { text: error ? `Not sent: ${error}` : 'Not sent.' }),
        el('button', { type: 'button', class: 'blw-link-button', text: 'Try again',
          onclick: () => { node.remove(); send(node.getAttribute('data-message') || '', node.getAttribute('data-title')); },
        })));
    }
  }

  function pendingNode(clientId) {
    for (const node of ui.messages.querySelectorAll('[data-client-id]')) {
      if (node.getAttribute('data-client-id') === clientId) return node;
    }
    return null;
  }

  function refreshReceipts() {
    for (const node of ui.messages.querySelectorAll('[data-state="pending"]')) setSendState(node, 'pending');
  }

  function greetingNodes(hasCustomerTurns) {
    const nodes = [messageNode({ role: 'bot', text: config.greeting })];
    nodes[0].setAttribute('data-local', 'greeting');
    if (!hasCustomerTurns && config.suggestions.length) {
      nodes.push(el('div', { class: 'blw-suggestions', 'data-local': 'suggestions' },
        ...config.suggestions.map((s) => el('button', {
          type: 'button', class: 'blw-chip', 'data-testid': 'blw-suggestion', text: s, onclick: () => send(s, s),
        }))));
    }
    return nodes;
  }

  function clearSuggestions() {
    const node = ui.messages.querySelector('[data-local="suggestions"]');
    if (node) node.remove();
  }

  // The server's history replaces what is shown; unsent messages follow it.
  function renderHistory(messages) {
    // System turns ("Bot paused", "Bot resumed") are notes for agents that the customer never
    // saw live, so a reload leaves them out too: it restores what the customer was shown.
    const turns = Array.isArray(messages)
      ? messages.filter((t) => t && typeof t === 'object' && t.role !== 'system') : [];
    const nodes = greetingNodes(turns.some((t) => t.role === 'customer') || state.outbox.length > 0);
    let buttons = [];
    const shownIds = new Set();
    turns.forEach((turn, i) => {
      if (turn.role === 'customer') {
        if (turn.client_id) shownIds.add(turn.client_id);
        let shown = String(turn.text == null ? '' : turn.text);
        if (turn.button_title || shown.startsWith('/') || shown.startsWith('[pressed a button')) {
          shown = buttonTitle(turn, buttons);
        }
        nodes.push(messageNode({ ...turn, text: shown }));
      } else {
        const next = turns.slice(i + 1).find((t) => t.role === 'customer');
        const chosen = next && (turn.buttons || []).find((b) => b && (b.payload === next.text
          || (next.button_title && (b.title === next.button_title || csatLabel(b.title) === next.button_title))));
        nodes.push(messageNode(turn, { buttonsUsed: !!next, chosenPayload: chosen ? chosen.payload : null }));
        if (Array.isArray(turn.buttons) && turn.buttons.length) buttons = turn.buttons;
      }
    });
    // An unacked message the server did store (its ack was lost) is shown once, not twice.
    const recent = turns.filter((t) => t.role === 'customer').slice(-state.outbox.length).map((t) => t.text);
    for (const item of state.outbox) {
      if (shownIds.has(item.client_id)) continue;
      const at = item.tries > 0 ? recent.indexOf(item.message) : -1;
      if (at >= 0) { recent.splice(at, 1); continue; }
      nodes.push(customerNode(item, 'pending'));
    }
    ui.messages.replaceChildren(...nodes, ui.typing);
    const last = turns[turns.length - 1];
    if (!state.outbox.length && (!last || last.role !== 'customer')) hideTyping();
    scrollDown();
  }

  function showTyping(ms = TYPING_MS) {
    ui.typing.hidden = false;
    scrollDown();
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(hideTyping, ms);
  }

  // The agent who has the chat sees that the customer is typing (at most every 2 s).
  function tellTyping() {
    const now = Date.now();
    if (!state.socket || !state.socket.connected || now - (state.typingSent || 0) < AGENT_TYPING_MS / 3) return;
    state.typingSent = now;
    state.socket.emit('typing');
  }

  function onAgentTyping(data) {
    const name = data && typeof data.agent === 'string' && data.agent ? displayName(data.agent) : 'Our agent';
    ui.typing.querySelector('.blw-sr').textContent = `${name} is typing`;
    ui.typing.setAttribute('data-agent', name);
    showTyping(AGENT_TYPING_MS);
  }

  function hideTyping() {
    clearTimeout(state.typingTimer);
    ui.typing.hidden = true;
    ui.typing.removeAttribute('data-agent'); // the next dots are the bot's unless an agent types again
    ui.typing.querySelector('.blw-sr').textContent = 'Brightline is typing';
  }

  function renderStatus() {
    const name = state.online ? 'online' : state.everConnected ? 'offline' : 'connecting';
    const labels = { online: 'Online', offline: 'Reconnecting…', connecting: 'Connecting…' };
    ui.root.setAttribute('data-state', name);
    ui.status.setAttribute('data-state', name);
    ui.status.textContent = labels[name];
    ui.banner.hidden = name !== 'offline';
    refreshReceipts();
  }

  // ---------- sending ----------

  function submit() {
    const value = ui.input.value.trim();
    if (!value) return;
    ui.input.value = '';
    autosize();
    send(value.slice(0, MAX_MESSAGE), null);
  }

  // Every message goes through the outbox, so one typed offline or lost in a dropped
  // connection is sent again on the next connect. The server ignores a repeated client_id.
  function send(message, title) {
    if (!message) return;
    const item = { client_id: newId(), message, title: title || message, ts: Date.now() / 1000, tries: 0 };
    state.outbox.push(item);
    saveOutbox();
    retireButtons();
    clearSuggestions();
    add(customerNode(item, 'pending'));
    if (!state.open) setOpen(true);
    connect();
    flush();
  }

  function flush() {
    const socket = state.socket;
    if (state.sending || !state.ready || !socket || !socket.connected) return;
    const item = state.outbox[0];
    if (!item) return;
    const token = ++state.seq;
    state.sending = token;
    item.tries = (item.tries || 0) + 1;
    saveOutbox();
    const metadata = {};
    if (config.customerName) metadata.customer_name = config.customerName;
    if (item.title && item.title !== item.message) metadata.button_title = item.title;
    metadata.client_id = item.client_id; // kept with the stored message, so history can name it
    showTyping(); // only once the message is on its way, not while offline
    socket.timeout(ACK_TIMEOUT_MS).emit('user_uttered',
      { message: item.message, session_id: state.sessionId, client_id: item.client_id, metadata },
      (err, reply) => {
        if (state.sending !== token) return; // a reconnect started over
        state.sending = 0;
        if (err) { flush(); return; } // no ack (timeout or disconnect): it stays first in line
        if (reply && !reply.ok && reply.retry_after) {
          // The server could not take it yet (busy, too fast, store down): keep it, try later.
          clearTimeout(state.retryTimer);
          state.retryTimer = setTimeout(flush, Math.min(60, Number(reply.retry_after) || 5) * 1000);
          return;
        }
        state.outbox = state.outbox.filter((m) => m.client_id !== item.client_id);
        saveOutbox();
        const node = pendingNode(item.client_id);
        if (reply && reply.ok) {
          if (node) setSendState(node, 'sent');
          // The ack comes after the bot's turn, replies included: no reply by now means the
          // bot is not answering (a person has the chat, or the customer waits for one).
          if (!state.outbox.length) hideTyping();
        } else if (node) {
          setSendState(node, 'failed', reply && reply.error ? String(reply.error) : '');
          hideTyping();
        }
        flush();
      });
  }

  // ---------- receiving ----------

  function onBotUttered(data) {
    if (!data || typeof data !== 'object') return;
    const turn = {
      role: data.agent ? 'agent' : 'bot', text: data.text, agent: data.agent || null,
      buttons: Array.isArray(data.buttons) && data.buttons.length ? data.buttons : null,
      timestamp: data.timestamp || Date.now() / 1000,
    };
    if (!turn.text && !turn.buttons) return;
    hideTyping();
    add(messageNode(turn));
    if (!state.open) { state.unread += 1; renderBadge(); }
  }

  function onSessionConfirm(data) {
    const id = data && typeof data === 'object' ? data.session_id : null;
    if (!id) return;
    if (state.sessionId && state.sessionId !== String(id)) renderHistory([]); // a new session: start clean
    state.sessionId = String(id);
    state.token = data.token ? String(data.token) : null;
    store.set(KEYS.session, state.sessionId);
    if (state.token) store.set(KEYS.token, state.token);
    if (Number(data.max_message) > 0) {
      MAX_MESSAGE = Number(data.max_message);
      ui.input.setAttribute('maxlength', String(MAX_MESSAGE));
    }
    clearTimeout(state.historyTimer);
    state.historyTimer = setTimeout(ready, NO_HISTORY_MS);
  }

  function onHistory(data) {
    clearTimeout(state.historyTimer);
    renderHistory(data && data.messages);
    ready();
  }

  function ready() {
    state.ready = true;
    flush();
  }

  // ---------- the connection ----------

  function connect() {
    if (state.socket || state.loading) return;
    // A page that already has socket.io-client 4.4+ (protocol v5, with emit timeouts) shares it;
    // otherwise we load our copy and put back whatever `io` global the page had.
    const existing = window.io;
    if (typeof existing === 'function' && existing.Socket && typeof existing.Socket.prototype.timeout === 'function') {
      openSocket(existing);
      return;
    }
    state.loading = true;
    const tag = el('script', { src: asset('socket.io.min.js'), async: '' });
    tag.addEventListener('load', () => {
      const ours = window.io;
      if (existing) window.io = existing; else delete window.io;
      state.loading = false;
      if (ours) openSocket(ours);
    });
    tag.addEventListener('error', () => {
      state.loading = false;
      tag.remove();
      setTimeout(connect, 5000);
    });
    document.head.append(tag);
  }

  function openSocket(io) {
    // WebSocket first: it needs no CORS headers, so the widget works on any site that embeds
    // it; long-polling is the fallback where a proxy blocks WebSockets.
    const socket = io(server.origin, {
      path: `${prefix}/socket.io`, transports: ['websocket', 'polling'], tryAllTransports: true,
      reconnectionDelayMax: 5000,
    });
    state.socket = socket;
    socket.on('connect', () => {
      state.online = true;
      state.everConnected = true;
      state.ready = false;
      state.sending = 0;
      renderStatus();
      socket.emit('session_request', { session_id: state.sessionId || null, token: state.token || null });
    });
    socket.on('disconnect', () => {
      state.online = false;
      state.ready = false;
      state.sending = 0;
      clearTimeout(state.historyTimer);
      renderStatus();
    });
    socket.on('session_confirm', onSessionConfirm);
    socket.on('session_refused', (data) => { // too many sessions from here, or the server is busy
      const wait = Math.min(120, Number(data && data.retry_after) || 30);
      setTimeout(() => { if (socket.connected) socket.emit('session_request', { session_id: state.sessionId || null, token: state.token || null }); }, wait * 1000);
    });
    socket.on('history', onHistory);
    socket.on('bot_uttered', onBotUttered);
    socket.on('agent_typing', onAgentTyping);
  }

  // ---------- start ----------

  function start() {
    build();
    loadStylesheet();
    renderHistory([]);
    renderStatus();
    setOpen(state.open, { focus: false }); // a reload that restores the panel does not steal focus
    // Returning customers (or ones with unsent messages) reconnect at once, so replies that
    // arrived while they were away show up; a first-time visitor connects on first open.
    if (state.sessionId || state.outbox.length) connect();
  }

  window.BrightlineChat = {
    version: VERSION,
    config,
    open: () => setOpen(true),
    close: () => setOpen(false),
    toggle: () => setOpen(!state.open),
    send: (message) => send(String(message).slice(0, MAX_MESSAGE), null),
    get sessionId() { return state.sessionId; },
    get _socket() { return state.socket; },
    // For tests: drop the connection the way a network failure does (socket.io reconnects).
    _debug: {
      get state() { return state; },
      drop() { if (state.socket && state.socket.io.engine) state.socket.io.engine.close(); },
    },
  };

  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start, { once: true });
})();
