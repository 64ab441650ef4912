// Host code: a Solid root using the seed's useSSE hook on a room stream; every value the hook
// yields is listed. The hook only receives, so sending is a plain fetch like the seeds' others.
import { createEffect } from 'solid-js';
import { render } from 'solid-js/web';

import { roomId, userId } from './params.js';
import { useSSE } from './seeds/useSSE.ts';

function el(tag, props = {}) {
  return Object.assign(document.createElement(tag), props);
}

function Chat() {
  const { data, connected, error } = useSSE(
    `/chat/room/${encodeURIComponent(roomId)}/events?user_id=${encodeURIComponent(userId)}`,
  );
  const status = el('p', { id: 'status' });
  const list = el('ul', { id: 'messages' });
  const input = el('input', { autocomplete: 'off' });
  input.setAttribute('aria-label', 'Message');
  const form = el('form');
  form.append(input, el('button', { type: 'submit', textContent: 'Send' }));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = input.value;
    input.value = '';
    await fetch('/chat/messages', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'User-ID': userId },
      body: JSON.stringify({ room_id: roomId, message: text, timestamp: Date.now() }),
    });
  });

  createEffect(() => {
    status.textContent = connected() ? 'connected' : error() || 'connecting';
  });
  createEffect(() => {
    const message = data();
    if (message && typeof message === 'object') {
      list.append(el('li', { className: 'message', textContent: `${message.username}: ${message.text}` }));
    }
  });

  const main = el('main');
  main.append(status, list, form);
  return main;
}

render(Chat, document.getElementById('app'));
