// Shared by the console's pages (index.html, editor.html): a DOM helper that only ever
// sets text, and the JSON API call with the console's CSRF header.
// SECURITY: no HTML-string APIs; server data goes in with textContent / setAttribute only.
'use strict';

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value)); // only data-*, title, type, aria-* are used
  }
  for (const child of children) {
    if (child == null || child === false) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

async function api(method, path, body) {
  const opts = {
    method,
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'console' },
  };
  if (body !== undefined) opts.body = JSON.stringify(body);
  const res = await fetch(path, opts);
  if (res.status === 401) { // session gone: the login page is the only way forward
    location.href = '/login';
    throw new Error('Not logged in');
  }
  let data = null;
  try { data = await res.json(); } catch (_) { /* empty or non-JSON body is fine on 200 */ }
  if (!res.ok) {
    const msg = (data && (data.error || data.message)) || `Request failed (${res.status})`;
    throw new Error(msg);
  }
  return data;
}
