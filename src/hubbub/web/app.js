// Hubbub's web app: plain DOM, no framework. Built on hubbub.js (docs/client-js.md).
//
// Rules kept everywhere below: text from the server goes into the page with textContent (or as
// text nodes) only, never as HTML; no inline scripts or styles (the page's CSP forbids them);
// everything is reachable with the keyboard.
import { Hubbub, HubbubError, highlightPieces, newClientMsgId } from './hubbub.js';

const REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '😢'];
const PAGE = 50;
const GROUP_MS = 5 * 60 * 1000;
const TYPING_RENEW_MS = 2500;
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

const hub = new Hubbub();
const $ = (id) => document.getElementById(id);

const state = {
  me: null, // {id, username}
  rooms: new Map(), // id → room from GET /chat/rooms (+ local unread/last_message updates)
  listReads: 0, // room-list reads started so far
  roomEvents: new Map(), // room id → listReads when a stream event last added or dropped it
  current: null, // open room id
  views: new Map(), // room id → RoomView
  presence: new Map(), // user_id → 'online' | 'away' | 'offline'
  members: new Map(), // room id → Map(user_id → member)
  typing: new Map(), // room id → Map(user_id → {username, timer})
  names: new Map(), // user_id → username (from members and messages)
  search: { q: '', next: null, seq: 0 },
  typingSentAt: 0,
  typingRoom: null,
  wasAway: false,
  leaving: new Set(), // rooms this tab is leaving (no "you were removed" notice for those)
  memberGen: new Map(), // room id → count of member events seen (a stale member list loses)
};

// DOM helpers ---------------------------------------------------------------------------------

/** Create an element. `props`: class, text, attrs (setAttribute), data (dataset), on (events),
 * and plain properties. Children: nodes or strings (as text nodes, never parsed). */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'attrs') for (const [a, v] of Object.entries(value)) el.setAttribute(a, v);
    else if (key === 'data') Object.assign(el.dataset, value);
    else if (key === 'on') for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else el[key] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function show(el, visible) {
  el.hidden = !visible;
}

let toastTimer = null;
function toast(text) {
  const el = $('toast');
  el.textContent = text;
  show(el, true);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => show(el, false), 6000);
}

function errorText(err) {
  if (err instanceof HubbubError) {
    if (err.status === 0) return 'The server could not be reached.';
    return err.message;
  }
  if (err instanceof TypeError) return 'The server could not be reached.';
  return String(err?.message ?? err);
}

function confirmDialog(title, text, ok = 'Delete') {
  const dialog = $('confirm-dialog');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

function hue(text) {
  let n = 0;
  for (const ch of text) n = (n * 31 + ch.codePointAt(0)) % 360;
  return n;
}

function avatar(userId, name, extraClass = '') {
  const el = h('span', { class: `avatar ${extraClass}`, attrs: { 'aria-hidden': 'true' } },
    Array.from(name || '?')[0].toUpperCase());
  el.style.setProperty('--hue', String(hue(userId || name || '?')));
  return el;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function shortTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return timeFmt.format(d);
  if (now - d < 6 * 24 * 3600 * 1000) return dayFmt.format(d);
  return dateFmt.format(d);
}

function timeEl(iso) {
  const d = new Date(iso);
  return h('time', { dateTime: iso, title: Number.isNaN(d.getTime()) ? '' : dateFmt.format(d) }, shortTime(iso));
}

function formatSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function nameOf(userId) {
  if (state.me && userId === state.me.id) return state.me.username;
  return state.names.get(userId) ?? 'someone';
}

function preview(msg) {
  if (!msg) return '';
  if (msg.deleted) return 'Message deleted';
  const who = msg.user_id === state.me?.id ? 'You' : msg.username;
  const body = msg.file ? `📎 ${msg.file.name}${msg.text ? ' — ' + msg.text : ''}` : msg.text;
  return `${who}: ${body.replace(/\s+/g, ' ')}`;
}

// messages ------------------------------------------------------------------------------------

/** One room's loaded messages: its own <ol>, ordered by seq, each message once (by id). */
class RoomView {
  constructor(roomId) {
    this.id = roomId;
    this.list = h('ol', { class: 'message-list', data: { room: roomId } });
    // On touch screens a message's actions show when it is tapped.
    this.list.addEventListener('click', (e) => {
      if (e.target.closest('button, a, textarea, input')) return;
      const li = e.target.closest('li.msg');
      for (const other of this.list.querySelectorAll('li.tapped')) if (other !== li) other.classList.remove('tapped');
      li?.classList.toggle('tapped');
    });
    this.items = new Map(); // message id → {msg, el}
    this.pending = new Map(); // client_msg_id → el
    this.oldest = null;
    this.newest = 0;
    this.atStart = false;
    this.loading = false;
    this.loaded = false;
    this.scrollTop = null;
    this.stick = true;
    this.ready = null;
  }

  get isCurrent() {
    return state.current === this.id;
  }

  /** Load the newest page once; every caller awaits the same promise. */
  load() {
    this.ready ??= this.loadInitial().catch((err) => {
      this.ready = null;
      throw err;
    });
    return this.ready;
  }

  async loadInitial() {
    this.loading = true;
    renderHistoryStatus();
    try {
      const page = await hub.history(this.id, { limit: PAGE });
      this.merge(page);
      this.atStart = page.length < PAGE || page[0].seq <= 1;
      this.loaded = true;
    } finally {
      this.loading = false;
      renderHistoryStatus();
    }
    if (this.isCurrent) scrollToBottom();
    // Fill the screen: keep loading while there is no scrollbar yet.
    const box = $('messages');
    for (let i = 0; i < 5 && this.isCurrent && !this.atStart && box.scrollHeight <= box.clientHeight; i++) {
      await this.loadOlder();
    }
  }

  async loadOlder() {
    if (this.loading || this.atStart || !this.loaded) return;
    this.loading = true;
    renderHistoryStatus();
    const box = $('messages');
    try {
      const before = this.oldest ?? this.newest + 1;
      const page = await hub.history(this.id, { before, limit: PAGE });
      const height = box.scrollHeight;
      const top = box.scrollTop;
      this.merge(page);
      if (this.isCurrent) box.scrollTop = top + (box.scrollHeight - height);
      this.atStart = page.length < PAGE || page[0].seq <= 1;
    } catch (err) {
      toast(`Could not load earlier messages: ${errorText(err)}`);
    } finally {
      this.loading = false;
      renderHistoryStatus();
    }
  }

  /** Everything after the newest message we hold (after a reconnect, or a join). */
  async catchUp() {
    if (!this.loaded) return;
    for (let i = 0; i < 50; i++) {
      const page = await hub.history(this.id, { after: this.newest, limit: 200 });
      this.merge(page);
      if (page.length < 200) break;
    }
  }

  /** Re-read the loaded range: edits, deletes and reactions missed while away. */
  async refresh() {
    if (!this.loaded || this.oldest === null) return;
    let after = this.oldest - 1;
    for (let i = 0; i < 50; i++) {
      const page = await hub.history(this.id, { after, limit: 200 });
      this.merge(page);
      if (page.length < 200) break;
      after = page[page.length - 1].seq;
    }
  }

  merge(messages) {
    const stick = this.isCurrent && atBottom();
    for (const m of messages) this.upsert(m, { scroll: false });
    if (stick) scrollToBottom();
  }

  /** Insert a message in seq order, or update it in place; never twice. A message being
   * edited keeps its edit box: it is redrawn from the newest copy when the edit ends. */
  upsert(msg, { scroll = true, force = false } = {}) {
    state.names.set(msg.user_id, msg.username);
    const stick = scroll && this.isCurrent && atBottom();
    if (msg.client_msg_id && msg.user_id === state.me?.id) {
      const pendingEl = this.pending.get(msg.client_msg_id);
      if (pendingEl) {
        this.pending.delete(msg.client_msg_id);
        pendingEl.remove();
      }
    }
    const known = this.items.get(msg.id);
    if (known) {
      const same = JSON.stringify(known.msg) === JSON.stringify(msg);
      known.msg = msg;
      if (!force && (same || known.el.classList.contains('editing'))) return known.el;
      fillMessage(known.el, msg);
      regroup(known.el);
      regroup(known.el.nextElementSibling);
      return known.el;
    }
    const el = h('li', { class: 'msg', id: `m-${msg.id}`, data: { id: msg.id, seq: String(msg.seq), user: msg.user_id } });
    fillMessage(el, msg);
    this.items.set(msg.id, { msg, el });
    // Walk back from the end (the common case is "newest"): pending sends stay last.
    let after = this.list.lastElementChild;
    while (after && (after.dataset.seq === undefined || Number(after.dataset.seq) > msg.seq)) {
      after = after.previousElementSibling;
    }
    if (after) after.after(el);
    else this.list.prepend(el);
    regroup(el);
    regroup(el.nextElementSibling);
    if (this.oldest === null || msg.seq < this.oldest) this.oldest = msg.seq;
    if (msg.seq > this.newest) this.newest = msg.seq;
    if (stick) scrollToBottom();
    return el;
  }

  get(messageId) {
    return this.items.get(messageId);
  }

  /** An own text message on its way: shown at once, replaced by the stored one. */
  addPending(clientMsgId, text) {
    const el = h('li', { class: 'msg own pending', data: { user: state.me.id, cmid: clientMsgId } });
    const body = h('div', { class: 'body' },
      h('div', { class: 'meta' }, h('span', { class: 'author', text: state.me.username }),
        h('span', { class: 'status', text: 'Sending…' })),
      h('div', { class: 'text', text }));
    el.append(avatar(state.me.id, state.me.username), body);
    this.pending.set(clientMsgId, el);
    this.list.append(el);
    regroup(el);
    return el;
  }

  addUpload(file) {
    const key = newClientMsgId();
    const progress = h('progress', { max: 1, value: 0, attrs: { 'aria-label': `Uploading ${file.name}` } });
    const body = h('div', { class: 'body' },
      h('div', { class: 'meta' }, h('span', { class: 'author', text: state.me.username }),
        h('span', { class: 'status', text: 'Uploading…' })));
    let blobUrl = null;
    if (IMAGE_TYPES.has(file.type)) {
      blobUrl = URL.createObjectURL(file);
      body.append(h('figure', { class: 'file image' }, h('img', { src: blobUrl, alt: file.name })));
    }
    body.append(h('div', { class: 'file-card' }, h('span', { class: 'file-name', text: file.name }),
      h('span', { class: 'file-size', text: formatSize(file.size) })), progress);
    const el = h('li', { class: 'msg own pending', data: { user: state.me.id, cmid: key } }, avatar(state.me.id, state.me.username), body);
    this.pending.set(key, el);
    this.list.append(el);
    regroup(el);
    return { key, el, progress, blobUrl };
  }
}

function regroup(el) {
  if (!el) return;
  const prev = el.previousElementSibling;
  let cont = false;
  if (prev && prev.dataset.user === el.dataset.user && !prev.classList.contains('system')) {
    const a = Date.parse(prev.dataset.time ?? '');
    const b = Date.parse(el.dataset.time ?? '');
    cont = Number.isNaN(a) || Number.isNaN(b) || b - a < GROUP_MS;
  }
  el.classList.toggle('cont', cont);
}

/** (Re)build one message's content. Text only ever as text. */
function fillMessage(el, msg) {
  const own = msg.user_id === state.me?.id;
  el.className = 'msg';
  el.classList.toggle('own', own);
  el.classList.toggle('deleted', !!msg.deleted);
  el.classList.toggle('system', msg.type === 'system');
  el.dataset.time = msg.created_at;
  el.replaceChildren();

  const meta = h('div', { class: 'meta' },
    h('span', { class: 'author', text: msg.username }),
    timeEl(msg.created_at),
    msg.edited_at && !msg.deleted ? h('span', { class: 'edited', text: '(edited)', title: `edited ${dateFmt.format(new Date(msg.edited_at))}` }) : null);
  const body = h('div', { class: 'body' }, meta);

  if (msg.deleted) {
    body.append(h('div', { class: 'text tombstone', text: 'This message was deleted.' }));
  } else {
    if (msg.file) body.append(fileEl(msg.file));
    if (msg.text) body.append(h('div', { class: 'text', text: msg.text }));
    const reactions = reactionsEl(msg);
    if (reactions) body.append(reactions);
    body.append(actionsEl(msg, own));
  }
  el.append(avatar(msg.user_id, msg.username), body);
}

function fileEl(file) {
  const name = file.name || 'file';
  if (IMAGE_TYPES.has(file.content_type)) {
    const img = h('img', { src: file.url, alt: name, loading: 'lazy', decoding: 'async' });
    img.addEventListener('load', () => {
      const view = state.views.get(state.current);
      if (view?.stick) scrollToBottom();
    });
    return h('figure', { class: 'file image' },
      h('a', { href: file.url, target: '_blank', rel: 'noopener', attrs: { 'aria-label': `Open image ${name}` } }, img),
      h('figcaption', {}, h('span', { class: 'file-name', text: name }), ' ', h('span', { class: 'file-size', text: formatSize(file.size) })));
  }
  return h('a', { class: 'file-card', href: file.url, download: name, rel: 'noopener' },
    h('span', { class: 'file-icon', attrs: { 'aria-hidden': 'true' } }, '📄'),
    h('span', { class: 'file-name', text: name }),
    h('span', { class: 'file-size', text: formatSize(file.size) }));
}

function reactionsEl(msg) {
  const entries = Object.entries(msg.reactions ?? {}).filter(([, users]) => users.length);
  if (!entries.length) return null;
  const box = h('div', { class: 'reactions' });
  for (const [emoji, users] of entries) {
    const mine = users.includes(state.me?.id);
    const who = users.map((u) => (u === state.me?.id ? 'you' : nameOf(u))).join(', ');
    box.append(h('button', {
      type: 'button',
      class: `reaction${mine ? ' mine' : ''}`,
      title: who,
      attrs: { 'aria-pressed': String(mine), 'aria-label': `${emoji} ${users.length}: ${who}` },
      data: { reaction: emoji },
      on: { click: () => toggleReaction(msg.id, emoji) },
    }, h('span', { class: 'emoji', text: emoji }), h('span', { class: 'count', text: String(users.length) })));
  }
  return box;
}

function actionsEl(msg, own) {
  const bar = h('div', { class: 'actions', attrs: { role: 'toolbar', 'aria-label': 'Message actions' } });
  bar.append(h('button', {
    type: 'button', class: 'action', title: 'Add a reaction',
    attrs: { 'aria-label': 'Add a reaction', 'aria-haspopup': 'dialog' },
    on: { click: (e) => openPicker(e.currentTarget, msg.id) },
  }, '☺'));
  if (own && msg.type === 'text') {
    bar.append(h('button', { type: 'button', class: 'action', text: 'Edit', on: { click: () => startEdit(msg.id) } }));
  }
  if (own) {
    bar.append(h('button', { type: 'button', class: 'action danger-text', text: 'Delete', on: { click: () => removeMessage(msg.id) } }));
  }
  return bar;
}

function currentView() {
  return state.current ? state.views.get(state.current) : null;
}

function atBottom() {
  const box = $('messages');
  return box.scrollHeight - box.scrollTop - box.clientHeight < 48;
}

function scrollToBottom() {
  const box = $('messages');
  box.scrollTop = box.scrollHeight;
  const view = currentView();
  if (view) view.stick = true;
  show($('jump-new'), false);
}

function renderHistoryStatus() {
  const view = currentView();
  const el = $('history-status');
  el.replaceChildren();
  if (!view) return;
  const room = state.rooms.get(view.id);
  if (view.loading) el.append('Loading messages…');
  else if (view.atStart) el.append(`This is the beginning of ${room ? '#' + room.name : 'this room'}.`);
  else if (view.loaded) {
    el.append(h('button', { type: 'button', class: 'link', text: 'Load earlier messages', on: { click: () => view.loadOlder() } }));
  }
}

// rooms ---------------------------------------------------------------------------------------

/** A stream event added or dropped this room: a room list read before it is older than it. */
function roomEvent(roomId) {
  state.roomEvents.set(roomId, state.listReads);
}

/** Whether an event about this room arrived while the list read numbered `read` was under way
 * (that list was read before the event, so the event's view wins). */
function newerThanList(roomId, read) {
  return (state.roomEvents.get(roomId) ?? -1) >= read;
}

async function loadRooms() {
  const read = ++state.listReads;
  const { rooms } = await hub.rooms();
  const seen = new Set();
  for (const room of rooms) {
    seen.add(room.id);
    if (newerThanList(room.id, read)) continue;
    const old = state.rooms.get(room.id);
    // A live message may be newer than the list we just read: keep the newer view.
    if (old && old.last_seq > room.last_seq) {
      room.last_seq = old.last_seq;
      room.last_message = old.last_message;
      room.unread = old.unread;
    }
    state.rooms.set(room.id, room);
  }
  for (const room of state.rooms.values()) {
    if (room.member) room.read_seq = Math.max(room.read_seq ?? 0, (room.last_seq ?? 0) - (room.unread ?? 0));
  }
  for (const id of [...state.rooms.keys()]) if (!seen.has(id) && !newerThanList(id, read)) state.rooms.delete(id);
  renderRooms();
  renderRoomHeader();
}

function renderRooms() {
  const active = document.activeElement?.closest?.('.room')?.dataset.room;
  const mine = [];
  const others = [];
  for (const room of state.rooms.values()) (room.member ? mine : others).push(room);
  const byName = (a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id);
  mine.sort(byName);
  others.sort(byName);
  $('my-rooms').replaceChildren(...mine.map(roomItem));
  $('public-rooms').replaceChildren(...others.map(roomItem));
  show($('no-rooms'), mine.length === 0);
  show($('no-public'), others.length === 0);
  if (active) document.querySelector(`.room[data-room="${CSS.escape(active)}"]`)?.focus();
  const total = mine.reduce((n, r) => n + (r.unread || 0), 0);
  document.title = total ? `(${total}) Hubbub` : 'Hubbub';
}

function roomItem(room) {
  const unread = room.member ? room.unread || 0 : 0;
  const current = room.id === state.current;
  const last = room.last_message;
  const button = h('button', {
    type: 'button',
    class: `room${current ? ' active' : ''}${unread ? ' unread' : ''}`,
    data: { room: room.id },
    attrs: current ? { 'aria-current': 'page' } : {},
    on: { click: () => navigate(room.id) },
  },
  h('span', { class: 'room-icon', attrs: { 'aria-hidden': 'true' } }, room.visibility === 'private' ? '🔒' : '#'),
  h('span', { class: 'room-text' },
    h('span', { class: 'room-line' },
      h('span', { class: 'room-name', text: room.name }),
      last ? h('span', { class: 'room-time', text: shortTime(last.created_at) }) : null),
    h('span', { class: 'room-last', text: room.member ? preview(last) || 'No messages yet' : 'Public room · not joined' })),
  unread ? h('span', { class: 'badge', attrs: { 'aria-label': `${unread} unread` }, text: unread > 99 ? '99+' : String(unread) }) : null);
  return h('li', {}, button);
}

let focusNext = null; // {roomId, seq}: a search result to show once the room is open

function navigate(roomId, focusSeq = null) {
  focusNext = roomId && focusSeq !== null ? { roomId, seq: focusSeq } : null;
  const hash = roomId ? `#/room/${encodeURIComponent(roomId)}` : '#/';
  if (location.hash !== hash) location.hash = hash;
  else route();
}

function route() {
  const match = /^#\/room\/(.+)$/.exec(location.hash);
  const focus = focusNext;
  focusNext = null;
  if (match) {
    const roomId = decodeURIComponent(match[1]);
    openRoom(roomId, { focusSeq: focus?.roomId === roomId ? focus.seq : null });
  } else {
    closeRoom();
  }
}

function setView(name) {
  $('chat-view').dataset.view = name;
}

function closeRoom() {
  stopTyping();
  saveScroll();
  state.current = null;
  $('message-lists').replaceChildren();
  show($('room-pane'), false);
  show($('search-pane'), false);
  show($('empty-pane'), true);
  show($('members-panel'), false);
  setView('rooms');
  renderRooms();
}

function saveScroll() {
  const view = currentView();
  if (view) {
    view.scrollTop = $('messages').scrollTop;
    view.stick = atBottom();
  }
}

async function openRoom(roomId, { focusSeq = null } = {}) {
  if (state.current !== roomId) {
    stopTyping();
    saveScroll();
  }
  state.current = roomId;
  let view = state.views.get(roomId);
  const fresh = !view;
  if (!view) {
    view = new RoomView(roomId);
    state.views.set(roomId, view);
  }
  show($('empty-pane'), false);
  show($('search-pane'), false);
  show($('room-pane'), true);
  setView('room');
  $('message-lists').replaceChildren(view.list);
  show($('jump-new'), false);
  renderRoomHeader();
  renderRooms();
  renderTyping();
  renderHistoryStatus();
  // Ready to type at once (not on touch screens: no keyboard popping up uninvited).
  const keep = document.activeElement?.closest?.('#search-form, dialog');
  if (focusSeq === null && !keep && !matchMedia('(pointer: coarse)').matches) {
    $('message-input').focus({ preventScroll: true });
  }
  if (!state.rooms.has(roomId)) {
    try {
      const room = await hub.room(roomId);
      state.rooms.set(room.id, { ...room, unread: 0, last_message: null });
      renderRooms();
      renderRoomHeader();
    } catch (err) {
      toast(`Cannot open this room: ${errorText(err)}`);
      state.views.delete(roomId);
      navigate(null);
      return;
    }
  }
  // Wide screens show the members beside the conversation; narrower ones float them on demand.
  toggleMembers(wideScreen(), false);
  loadMembers(roomId);
  if (fresh || !view.loaded) {
    try {
      await view.load();
    } catch (err) {
      toast(`Could not load messages: ${errorText(err)}`);
    }
  } else if (view.stick || view.scrollTop === null) {
    scrollToBottom();
  } else {
    $('messages').scrollTop = view.scrollTop;
  }
  if (focusSeq !== null && state.current === roomId) await focusMessage(view, focusSeq);
  markReadSoon();
}

async function focusMessage(view, seq) {
  for (let i = 0; i < 100 && !view.atStart && (view.oldest === null || view.oldest > seq); i++) {
    await view.loadOlder();
  }
  const el = view.list.querySelector(`li[data-seq="${seq}"]`);
  if (!el) {
    toast('That message is no longer here.');
    return;
  }
  el.tabIndex = -1;
  el.scrollIntoView({ block: 'center' });
  el.focus({ preventScroll: true });
  el.classList.remove('flash');
  void el.offsetWidth;
  el.classList.add('flash');
  view.stick = atBottom();
}

function renderRoomHeader() {
  const room = state.rooms.get(state.current);
  if (!room) return;
  $('room-name').textContent = `${room.visibility === 'private' ? '🔒 ' : '# '}${room.name}`;
  const members = state.members.get(room.id);
  const parts = [room.visibility === 'private' ? 'Private' : 'Public'];
  if (members) {
    const online = [...members.values()].filter((m) => presenceOf(m.user_id) === 'online').length;
    parts.push(`${members.size} member${members.size === 1 ? '' : 's'}`, `${online} online`);
  }
  $('room-sub').textContent = parts.join(' · ');
  $('message-input').placeholder = `Message #${room.name}`;
  show($('join-bar'), !room.member);
  show($('composer'), !!room.member);
  show($('composer-hint'), !!room.member);
  show($('leave-room'), !!room.member);
  show($('rename-room'), isAdmin(room));
  show($('invite-form'), !!room.member && room.visibility === 'private');
}

function isAdmin(room) {
  return !!room?.member && room.role === 'admin';
}

async function removeMember(roomId, member) {
  const room = state.rooms.get(roomId);
  const where = room ? `#${room.name}` : 'this room';
  if (!(await confirmDialog(`Remove ${member.username}?`, `They will stop receiving the messages of ${where}.`, 'Remove'))) return;
  try {
    await hub.removeMember(roomId, member.user_id);
    bumpMembers(roomId);
    if (state.members.get(roomId)?.delete(member.user_id) && roomId === state.current) {
      renderMembers();
      renderRoomHeader();
    }
  } catch (err) {
    toast(`Could not remove ${member.username}: ${errorText(err)}`);
  }
}

let membersTimer = null;
function loadMembersSoon(roomId) {
  clearTimeout(membersTimer);
  membersTimer = setTimeout(() => loadMembers(roomId), 300);
}

async function loadMembers(roomId, attempt = 0) {
  try {
    const gen = state.memberGen.get(roomId) ?? 0;
    const { members } = await hub.members(roomId);
    if ((state.memberGen.get(roomId) ?? 0) !== gen) {
      // Someone joined or left while the list was on its way: it may be stale, read again.
      if (attempt < 5) setTimeout(() => loadMembers(roomId, attempt + 1), 200);
      return;
    }
    if (!state.rooms.has(roomId) && roomId !== state.current) return;
    const map = new Map();
    for (const m of members) {
      map.set(m.user_id, m);
      state.names.set(m.user_id, m.username);
      if (m.presence) state.presence.set(m.user_id, m.presence);
    }
    state.members.set(roomId, map);
    if (roomId === state.current) {
      renderMembers();
      renderRoomHeader();
    }
  } catch (err) {
    if (!(err instanceof HubbubError && err.status === 404)) console.warn('members', err);
  }
}

function presenceOf(userId) {
  if (userId === state.me?.id && hub.state === 'open') return state.presence.get(userId) ?? 'online';
  return state.presence.get(userId) ?? 'offline';
}

function renderMembers() {
  const members = state.members.get(state.current);
  const list = $('member-list');
  if (!members) {
    list.replaceChildren();
    return;
  }
  const admin = isAdmin(state.rooms.get(state.current));
  const roomId = state.current;
  const rank = { online: 0, away: 1, offline: 2 };
  const sorted = [...members.values()].sort((a, b) =>
    rank[presenceOf(a.user_id)] - rank[presenceOf(b.user_id)] || a.username.localeCompare(b.username));
  list.replaceChildren(...sorted.map((m) => {
    const status = presenceOf(m.user_id);
    return h('li', { class: `member ${status}`, data: { user: m.user_id, presence: status } },
      h('span', { class: 'avatar-wrap' }, avatar(m.user_id, m.username, 'small'),
        h('span', { class: `dot ${status}`, attrs: { 'aria-hidden': 'true' } })),
      h('span', { class: 'member-name', text: m.username + (m.user_id === state.me?.id ? ' (you)' : '') }),
      h('span', { class: 'visually-hidden', text: `, ${status}` }),
      m.role === 'admin' ? h('span', { class: 'role', text: 'admin' }) : null,
      admin && m.user_id !== state.me?.id ? h('button', {
        type: 'button', class: 'icon-button remove-member', title: `Remove ${m.username}`,
        attrs: { 'aria-label': `Remove ${m.username} from the room` },
        on: { click: () => removeMember(roomId, m) },
      }, '×') : null);
  }));
}

function wideScreen() {
  return window.matchMedia('(min-width: 1100px)').matches;
}

function toggleMembers(open, focus = true) {
  const panel = $('members-panel');
  const visible = open ?? panel.hidden;
  show(panel, visible);
  $('members-toggle').setAttribute('aria-expanded', String(visible));
  if (visible) {
    renderMembers();
    if (focus) $('members-close').focus();
  } else if (focus) {
    $('members-toggle').focus();
  }
}

// read receipts and unread counts --------------------------------------------------------------

let readTimer = null;
function markReadSoon() {
  clearTimeout(readTimer);
  readTimer = setTimeout(markRead, 300);
}

async function markRead() {
  const view = currentView();
  const room = view && state.rooms.get(view.id);
  if (!room || !room.member || document.visibilityState !== 'visible' || !atBottom()) return;
  const seq = Math.max(view.newest, 0);
  if (room.unread) {
    room.unread = 0;
    renderRooms();
  }
  if (seq > (room.read_seq ?? 0)) {
    room.read_seq = seq;
    try {
      await hub.markRead(room.id, seq);
    } catch (err) {
      if (!(err instanceof HubbubError && [403, 404, 422].includes(err.status))) room.read_seq = 0;
    }
  }
}

// live events ---------------------------------------------------------------------------------

hub.on('message', (msg) => {
  state.names.set(msg.user_id, msg.username);
  const room = state.rooms.get(msg.room_id);
  if (room) {
    if (msg.seq > (room.last_seq ?? 0)) {
      room.last_seq = msg.seq;
      room.last_message = msg;
    }
    const view = state.views.get(msg.room_id);
    const seen = view?.items.has(msg.id);
    const looking = msg.room_id === state.current && atBottom() && document.visibilityState === 'visible';
    if (!seen && msg.user_id !== state.me?.id && !looking && msg.seq > (room.read_seq ?? 0)) {
      room.unread = (room.unread || 0) + 1;
    }
    renderRooms();
  } else {
    loadRooms().catch(() => {});
  }
  const view = state.views.get(msg.room_id);
  if (view?.loaded || view?.loading) {
    const stick = view.isCurrent && atBottom();
    view.upsert(msg);
    if (view.isCurrent) {
      if (stick || msg.user_id === state.me?.id) scrollToBottom();
      else show($('jump-new'), true);
      markReadSoon();
    }
  }
  // A message ends its author's typing.
  clearTyping(msg.room_id, msg.user_id);
});

function updateMessage(msg) {
  const view = state.views.get(msg.room_id);
  if (view?.get(msg.id)) view.upsert(msg);
  const room = state.rooms.get(msg.room_id);
  if (room?.last_message?.id === msg.id) {
    room.last_message = msg;
    renderRooms();
  }
}

hub.on('message_edited', updateMessage);
hub.on('message_deleted', updateMessage);

hub.on('reaction', (ev) => {
  const view = state.views.get(ev.room_id);
  const item = view?.get(ev.message_id);
  if (!item) return;
  const reactions = { ...item.msg.reactions };
  const users = new Set(reactions[ev.reaction] ?? []);
  if (ev.action === 'removed') users.delete(ev.user_id);
  else users.add(ev.user_id);
  if (users.size) reactions[ev.reaction] = [...users];
  else delete reactions[ev.reaction];
  view.upsert({ ...item.msg, reactions });
});

hub.on('typing', (ev) => {
  if (ev.user_id === state.me?.id) return;
  if (ev.username) state.names.set(ev.user_id, ev.username);
  if (ev.is_typing) {
    let room = state.typing.get(ev.room_id);
    if (!room) state.typing.set(ev.room_id, (room = new Map()));
    clearTimeout(room.get(ev.user_id)?.timer);
    const timer = setTimeout(() => clearTyping(ev.room_id, ev.user_id), 8000);
    room.set(ev.user_id, { username: ev.username ?? nameOf(ev.user_id), timer });
    if (ev.room_id === state.current) renderTyping();
  } else {
    clearTyping(ev.room_id, ev.user_id);
  }
});

function clearTyping(roomId, userId) {
  const room = state.typing.get(roomId);
  const entry = room?.get(userId);
  if (!entry) return;
  clearTimeout(entry.timer);
  room.delete(userId);
  if (roomId === state.current) renderTyping();
}

function renderTyping() {
  const names = [...(state.typing.get(state.current)?.values() ?? [])].map((t) => t.username);
  const el = $('typing');
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = `${names.length} people are typing…`;
  el.textContent = text;
  el.classList.toggle('active', names.length > 0);
}

hub.on('presence', (ev) => {
  state.presence.set(ev.user_id, ev.status);
  if (state.current && state.members.get(state.current)?.has(ev.user_id)) {
    renderMembers();
    renderRoomHeader();
  }
});

// Membership, driven by the stream (live and replayed after a reconnect alike).

function bumpMembers(roomId) {
  state.memberGen.set(roomId, (state.memberGen.get(roomId) ?? 0) + 1);
}

hub.on('member_joined', (ev) => {
  state.names.set(ev.user_id, ev.username);
  bumpMembers(ev.room_id);
  const members = state.members.get(ev.room_id);
  if (!members || members.has(ev.user_id)) return;
  members.set(ev.user_id, { user_id: ev.user_id, username: ev.username, role: 'member', joined_at: null });
  if (ev.room_id === state.current) {
    renderMembers();
    renderRoomHeader();
    // The stream says who joined, not whether they are online (presence is only streamed
    // when it changes): read the list once things settle, for presence and role.
    loadMembersSoon(ev.room_id);
  }
});

hub.on('member_left', (ev) => {
  bumpMembers(ev.room_id);
  if (ev.user_id === state.me?.id) {
    dropRoom(ev.room_id);
    return;
  }
  const members = state.members.get(ev.room_id);
  if (members?.delete(ev.user_id) && ev.room_id === state.current) {
    renderMembers();
    renderRoomHeader();
  }
});

/** I am out of a room (left here or elsewhere, or removed by an admin): a private room goes
 * from the list, a public one moves to the public rooms; an open one closes with a notice. */
function dropRoom(roomId) {
  roomEvent(roomId);
  const room = state.rooms.get(roomId);
  const wasMember = !!room?.member;
  state.views.delete(roomId);
  state.members.delete(roomId);
  for (const userId of [...(state.typing.get(roomId)?.keys() ?? [])]) clearTyping(roomId, userId);
  if (room) {
    if (room.visibility === 'public') Object.assign(room, { member: false, role: null, unread: 0 });
    else state.rooms.delete(roomId);
  }
  if (state.current === roomId && wasMember) {
    if (!state.leaving.has(roomId)) toast(`You are no longer a member of #${room.name}.`);
    navigate(null);
  }
  renderRooms();
}

hub.on('room_removed', (ev) => dropRoom(ev.room_id));

/** The fields of a streamed room object (`room_added`, `room_updated`, `room_created`). */
function roomFields(r) {
  return { id: r.id, name: r.name, visibility: r.visibility, created_by: r.created_by, created_at: r.created_at };
}

hub.on('room_added', (r) => {
  roomEvent(r.id);
  const old = state.rooms.get(r.id);
  const lastSeq = Math.max(old?.last_seq ?? 0, r.last_seq ?? 0);
  if (old?.member) {
    Object.assign(old, roomFields(r), { last_seq: lastSeq });
  } else {
    // New to me: what came before the join counts as read; the stream brings what follows.
    state.rooms.set(r.id, {
      ...old,
      ...roomFields(r),
      last_seq: lastSeq,
      member: true,
      role: r.created_by === state.me?.id ? 'admin' : 'member',
      unread: 0,
      read_seq: lastSeq,
      last_message: old?.last_message ?? null,
    });
    completeRoom(r.id);
  }
  renderRooms();
  if (r.id === state.current) {
    renderRoomHeader();
    loadMembers(r.id);
  }
});

/** What `room_added` does not carry: my role (an admin may have added me as one) and the
 * room's newest message for the room list. */
async function completeRoom(roomId) {
  try {
    const [details, last] = await Promise.all([hub.room(roomId), hub.history(roomId, { limit: 1 })]);
    const room = state.rooms.get(roomId);
    if (!room?.member) return;
    if (details.role) room.role = details.role;
    const newest = last[last.length - 1];
    if (newest && !(room.last_message && room.last_message.seq >= newest.seq)) room.last_message = newest;
    renderRooms();
    if (roomId === state.current) {
      renderRoomHeader();
      renderMembers();
    }
  } catch {
    /* gone again meanwhile: room_removed says so */
  }
}

hub.on('room_updated', (r) => {
  const room = state.rooms.get(r.id);
  if (!room) return;
  Object.assign(room, { name: r.name, visibility: r.visibility });
  renderRooms();
  if (r.id === state.current) {
    renderRoomHeader();
    renderHistoryStatus();
  }
});

hub.on('room_created', (r) => {
  // A new public room (live only; after a reconnect the public list is read again).
  if (state.rooms.has(r.id)) return;
  roomEvent(r.id);
  state.rooms.set(r.id, { ...roomFields(r), last_seq: r.last_seq ?? 0, member: false, role: null, unread: null, last_message: null });
  renderRooms();
});

hub.on('read', (ev) => {
  if (ev.user_id !== state.me?.id) return;
  const room = state.rooms.get(ev.room_id);
  if (!room) return;
  room.read_seq = Math.max(room.read_seq ?? 0, ev.seq);
  room.unread = Math.max(0, (room.last_seq ?? 0) - ev.seq);
  renderRooms();
});

hub.on('reset', async (ev) => {
  // History before `oldest_seq` is gone (retention): start the room over.
  const view = state.views.get(ev.room_id);
  if (!view) return;
  state.views.delete(ev.room_id);
  if (state.current === ev.room_id) openRoom(ev.room_id);
});

hub.on('state', ({ state: now }) => {
  const banner = $('banner');
  if (now === 'reconnecting') {
    $('banner-text').textContent = 'Reconnecting…';
    show(banner, true);
  } else if (now === 'open') {
    show(banner, false);
  }
  document.body.dataset.connection = now;
  if (state.current) renderMembers();
});

hub.on('unauthorized', () => {
  showAuth('Your session has ended. Please sign in again.');
});

// Every (re)connection. A resumed stream replays every stored change of my rooms after its
// cursor (messages, edits, deletes, reactions, members, renames, rooms added and removed, my
// read pointers), so the page follows from the events alone. A fresh stream is live only:
// read what was loaded before it went live again, as for a first page load.
hub.on('connected', () => {
  // Presence is live only; the stream starts with one `presence` per member online now.
  state.presence.clear();
  setTimeout(() => {
    if (state.current) {
      renderMembers();
      renderRoomHeader();
    }
  }, 50);
  if (hub.resumed) resyncUnstreamed();
  else resync();
});

/** After a resume: only what the stream does not carry — public rooms I am not in (new
 * ones are announced live only) and a public room I am looking at without being a member. */
async function resyncUnstreamed() {
  try {
    await refreshPublicRooms();
    for (const view of state.views.values()) {
      if (state.rooms.get(view.id)?.member) continue;
      await view.catchUp();
      if (view.isCurrent) {
        await view.refresh();
        loadMembers(view.id);
      }
    }
  } catch (err) {
    console.warn('resync', err);
  }
}

async function refreshPublicRooms() {
  const read = ++state.listReads;
  const { rooms } = await hub.rooms();
  const listed = new Set();
  for (const room of rooms) {
    if (room.member) continue; // mine follow the stream (room_added brings new ones)
    listed.add(room.id);
    if (newerThanList(room.id, read)) continue;
    const old = state.rooms.get(room.id);
    if (!old?.member) state.rooms.set(room.id, room);
  }
  for (const [id, room] of [...state.rooms]) {
    if (!room.member && !listed.has(id) && !newerThanList(id, read)) state.rooms.delete(id);
  }
  renderRooms();
  renderRoomHeader();
}

async function resync() {
  try {
    await loadRooms();
    for (const view of state.views.values()) {
      await view.catchUp();
      if (view.isCurrent) await view.refresh();
    }
    if (state.current) loadMembers(state.current);
  } catch (err) {
    console.warn('resync', err);
  }
}

// sending -------------------------------------------------------------------------------------

async function sendText(roomId, text, clientMsgId = newClientMsgId()) {
  const view = state.views.get(roomId);
  let el = view.pending.get(clientMsgId);
  if (!el) el = view.addPending(clientMsgId, text);
  setStatus(el, 'Sending…');
  el.classList.remove('failed');
  scrollToBottom();
  try {
    const msg = await hub.send(roomId, text, {
      clientMsgId,
      onRetry: ({ delay }) => setStatus(el, `Not sent yet — retrying in ${Math.ceil(delay / 1000)} s…`),
    });
    view.upsert(msg);
    const room = state.rooms.get(roomId);
    if (room && msg.seq > (room.last_seq ?? 0)) {
      room.last_seq = msg.seq;
      room.last_message = msg;
      room.read_seq = msg.seq;
      renderRooms();
    }
  } catch (err) {
    if (!view.pending.has(clientMsgId)) return; // delivered by the stream meanwhile
    el.classList.add('failed');
    setStatus(el, `Not sent: ${errorText(err)}`);
    const meta = el.querySelector('.meta');
    meta.append(
      h('button', { type: 'button', class: 'link', text: 'Retry', on: { click: () => sendText(roomId, text, clientMsgId) } }),
      h('button', { type: 'button', class: 'link', text: 'Discard', on: { click: () => { view.pending.delete(clientMsgId); el.remove(); } } }),
    );
    meta.querySelector('button')?.focus();
  }
}

function setStatus(el, text) {
  el.querySelectorAll('.meta button').forEach((b) => b.remove());
  const status = el.querySelector('.status');
  if (status) status.textContent = text;
}

async function uploadFiles(files) {
  const roomId = state.current;
  const view = currentView();
  const room = state.rooms.get(roomId);
  if (!view || !room?.member) return;
  for (const file of files) {
    const { key, el, progress, blobUrl } = view.addUpload(file);
    scrollToBottom();
    hub.upload(roomId, file, { onProgress: (f) => { progress.value = f; } }).then((msg) => {
      view.pending.delete(key);
      el.remove();
      view.upsert(msg);
      scrollToBottom();
      if (blobUrl) setTimeout(() => URL.revokeObjectURL(blobUrl), 10_000);
    }, (err) => {
      el.classList.add('failed');
      progress.remove();
      const reason = err instanceof HubbubError && err.status === 413 ? 'the file is too large' : errorText(err);
      setStatus(el, `Not uploaded: ${reason}`);
      el.querySelector('.meta').append(h('button', {
        type: 'button', class: 'link', text: 'Dismiss',
        on: { click: () => { view.pending.delete(key); el.remove(); if (blobUrl) URL.revokeObjectURL(blobUrl); } },
      }));
    });
  }
}

// typing --------------------------------------------------------------------------------------

function noteTyping() {
  const roomId = state.current;
  const room = state.rooms.get(roomId);
  if (!room?.member) return;
  const empty = !$('message-input').value.trim();
  if (empty) {
    stopTyping();
    return;
  }
  const now = Date.now();
  if (state.typingRoom !== roomId || now - state.typingSentAt > TYPING_RENEW_MS) {
    state.typingRoom = roomId;
    state.typingSentAt = now;
    hub.typing(roomId, true).catch(() => {});
  }
}

function stopTyping() {
  if (!state.typingRoom) return;
  const roomId = state.typingRoom;
  state.typingRoom = null;
  state.typingSentAt = 0;
  hub.typing(roomId, false).catch(() => {});
}

// editing, deleting, reacting -----------------------------------------------------------------

function startEdit(messageId) {
  const view = currentView();
  const item = view?.get(messageId);
  if (!item || item.el.classList.contains('editing')) return;
  const { el, msg } = item;
  el.classList.add('editing');
  const textEl = el.querySelector('.text');
  const area = h('textarea', { class: 'edit-box', value: msg.text, rows: Math.min(8, msg.text.split('\n').length), attrs: { 'aria-label': 'Edit message' } });
  const cancel = () => {
    fillMessage(el, view.get(messageId).msg);
    regroup(el);
    el.querySelector('.actions button')?.focus();
  };
  const save = async () => {
    const text = area.value;
    if (!text.trim()) {
      toast('A message cannot be empty. Delete it instead.');
      return;
    }
    if (text === msg.text) {
      cancel();
      return;
    }
    area.disabled = true;
    try {
      const edited = await hub.edit(messageId, text);
      view.upsert(edited, { force: true });
      $('message-input').focus();
    } catch (err) {
      area.disabled = false;
      toast(`Could not edit: ${errorText(err)}`);
    }
  };
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      save();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      cancel();
    }
  });
  const form = h('div', { class: 'edit' }, area,
    h('div', { class: 'edit-buttons' },
      h('span', { class: 'muted small-text', text: 'Enter to save · Esc to cancel' }),
      h('button', { type: 'button', class: 'ghost small', text: 'Cancel', on: { click: cancel } }),
      h('button', { type: 'button', class: 'primary small', text: 'Save', on: { click: save } })));
  if (textEl) textEl.replaceWith(form);
  else el.querySelector('.body').append(form);
  el.querySelector('.actions')?.remove();
  area.focus();
  area.setSelectionRange(area.value.length, area.value.length);
}

async function removeMessage(messageId) {
  const view = currentView();
  const item = view?.get(messageId);
  if (!item) return;
  if (!(await confirmDialog('Delete this message?', 'It will be removed for everyone in the room. This cannot be undone.'))) {
    item.el.querySelector('.actions button')?.focus();
    return;
  }
  try {
    view.upsert(await hub.deleteMessage(messageId));
    $('message-input').focus();
  } catch (err) {
    toast(`Could not delete: ${errorText(err)}`);
  }
}

async function toggleReaction(messageId, emoji) {
  const view = currentView();
  const item = view?.get(messageId);
  if (!item) return;
  const mine = (item.msg.reactions?.[emoji] ?? []).includes(state.me.id);
  try {
    const msg = mine ? await hub.unreact(messageId, emoji) : await hub.react(messageId, emoji);
    const el = view.upsert(msg);
    el.querySelector(`.reaction[data-reaction="${CSS.escape(emoji)}"]`)?.focus();
  } catch (err) {
    toast(`Could not react: ${errorText(err)}`);
  }
}

let pickerFor = null;
function openPicker(button, messageId) {
  const picker = $('emoji-picker');
  pickerFor = { button, messageId };
  picker.replaceChildren(...REACTIONS.map((emoji) => h('button', {
    type: 'button', class: 'emoji-choice', text: emoji, attrs: { 'aria-label': `React with ${emoji}` },
    on: { click: () => { closePicker(); toggleReaction(messageId, emoji); } },
  })));
  show(picker, true);
  const r = button.getBoundingClientRect();
  const width = picker.offsetWidth;
  const left = Math.max(8, Math.min(window.innerWidth - width - 8, r.right - width));
  const top = r.top - picker.offsetHeight - 6 > 8 ? r.top - picker.offsetHeight - 6 : r.bottom + 6;
  picker.style.left = `${left}px`;
  picker.style.top = `${top}px`;
  picker.querySelector('button').focus();
}

function closePicker(refocus = false) {
  const picker = $('emoji-picker');
  if (picker.hidden) return;
  show(picker, false);
  if (refocus) pickerFor?.button.focus();
  pickerFor = null;
}

$('emoji-picker').addEventListener('keydown', (e) => {
  const buttons = [...$('emoji-picker').querySelectorAll('button')];
  const i = buttons.indexOf(document.activeElement);
  if (e.key === 'Escape') {
    e.preventDefault();
    closePicker(true);
  } else if (e.key === 'ArrowRight' || e.key === 'ArrowDown') {
    e.preventDefault();
    buttons[(i + 1) % buttons.length].focus();
  } else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') {
    e.preventDefault();
    buttons[(i - 1 + buttons.length) % buttons.length].focus();
  } else if (e.key === 'Tab') {
    closePicker(false);
  }
});

document.addEventListener('pointerdown', (e) => {
  // a floating members panel closes when you click elsewhere
  if (!wideScreen() && !$('members-panel').hidden && !e.target.closest('#members-panel, #members-toggle')) {
    toggleMembers(false, false);
  }
  if (!$('emoji-picker').hidden && !e.target.closest('#emoji-picker') && !e.target.closest('.action')) closePicker();
});

// search --------------------------------------------------------------------------------------

async function runSearch(q, more = false) {
  q = q.trim();
  if (!q) return;
  const seq = ++state.search.seq;
  if (!more) {
    state.search = { q, next: null, seq };
    $('search-results').replaceChildren();
  }
  stopTyping();
  saveScroll();
  show($('empty-pane'), false);
  show($('room-pane'), false);
  show($('search-pane'), true);
  setView('search');
  $('search-title').textContent = `Results for “${q}”`;
  $('search-sub').textContent = 'Searching…';
  try {
    const { results, next_before: next } = await hub.search(q, { before: more ? state.search.next : undefined, limit: 20 });
    if (seq !== state.search.seq) return;
    state.search.next = next;
    for (const m of results) $('search-results').append(resultItem(m));
    const count = $('search-results').children.length;
    $('search-sub').textContent = count ? `${count}${next ? '+' : ''} message${count === 1 ? '' : 's'}` : 'Nothing found.';
    show($('search-more'), !!next);
  } catch (err) {
    if (seq !== state.search.seq) return;
    const text = err instanceof HubbubError && err.status === 422 ? 'Type a word to search for.' : errorText(err);
    $('search-sub').textContent = text;
    show($('search-more'), false);
  }
}

function resultItem(m) {
  const room = state.rooms.get(m.room_id);
  const text = h('span', { class: 'result-text' });
  for (const piece of highlightPieces(m.text, m.highlights ?? [])) {
    text.append(piece.match ? h('mark', { text: piece.text }) : document.createTextNode(piece.text));
  }
  return h('li', {}, h('button', {
    type: 'button', class: 'result', data: { room: m.room_id, seq: String(m.seq) },
    on: { click: () => navigate(m.room_id, m.seq) },
  },
  h('span', { class: 'result-meta' },
    h('span', { class: 'result-room', text: room ? `#${room.name}` : m.room_id }),
    h('span', { class: 'author', text: m.username }), timeEl(m.created_at)),
  text));
}

function closeSearch() {
  $('search-input').value = '';
  state.search.seq++;
  show($('search-pane'), false);
  if (state.current) openRoom(state.current);
  else closeRoom();
}

// auth ----------------------------------------------------------------------------------------

let registering = false;
function setAuthMode(register) {
  registering = register;
  $('auth-title').textContent = register ? 'Create an account' : 'Sign in';
  $('auth-submit').textContent = register ? 'Create account' : 'Sign in';
  $('auth-switch-text').textContent = register ? 'Already have an account?' : 'New here?';
  $('auth-switch').textContent = register ? 'Sign in' : 'Create an account';
  $('auth-password').autocomplete = register ? 'new-password' : 'current-password';
  show($('auth-hint'), register);
  $('auth-error').textContent = '';
}

function showAuth(message = '') {
  hub.close();
  show($('loading'), false);
  show($('chat-view'), false);
  show($('banner'), false);
  show($('auth-view'), true);
  $('auth-error').textContent = message;
  $('auth-username').focus();
}

async function submitAuth(e) {
  e.preventDefault();
  const username = $('auth-username').value.trim();
  const password = $('auth-password').value;
  const error = $('auth-error');
  error.textContent = '';
  if (!/^[A-Za-z0-9_.-]{3,32}$/.test(username)) {
    error.textContent = 'Usernames are 3–32 letters, digits, “_”, “.” or “-”.';
    $('auth-username').focus();
    return;
  }
  if (password.length < 8) {
    error.textContent = 'Passwords have at least 8 characters.';
    $('auth-password').focus();
    return;
  }
  $('auth-submit').disabled = true;
  try {
    if (registering) await hub.register(username, password);
    const out = await hub.login(username, password);
    $('auth-password').value = '';
    await startChat(out.user);
  } catch (err) {
    if (err instanceof HubbubError && err.code === 'username_taken') error.textContent = 'That username is taken. Pick another one.';
    else if (err instanceof HubbubError && err.code === 'invalid_credentials') error.textContent = 'Wrong username or password.';
    else error.textContent = errorText(err);
  } finally {
    $('auth-submit').disabled = false;
  }
}

async function startChat(user) {
  if (state.me) {
    // Signed in again after the session ended: start from a clean page.
    location.reload();
    return;
  }
  state.me = user;
  state.names.set(user.id, user.username);
  $('me-name').textContent = user.username;
  show($('loading'), false);
  show($('auth-view'), false);
  show($('chat-view'), true);
  // The room list follows the stream from here on (room_added / room_removed / room_updated /
  // room_created, messages and read pointers); no polling.
  hub.connect();
  await loadRooms();
  route();
  if (!location.hash.startsWith('#/room/')) document.querySelector('.room')?.focus();
}

// wiring --------------------------------------------------------------------------------------

function wire() {
  $('auth-form').addEventListener('submit', submitAuth);
  $('auth-switch').addEventListener('click', () => setAuthMode(!registering));

  $('logout').addEventListener('click', async () => {
    try {
      await hub.logout();
    } catch {
      /* the session may already be gone */
    }
    location.hash = '';
    location.reload();
  });

  window.addEventListener('hashchange', route);

  for (const back of document.querySelectorAll('.back')) back.addEventListener('click', () => navigate(null));

  $('new-room').addEventListener('click', () => {
    $('room-form').reset();
    $('room-error').textContent = '';
    $('room-dialog').showModal();
    $('room-name-input').focus();
  });
  $('room-cancel').addEventListener('click', () => $('room-dialog').close());
  $('room-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $('room-name-input').value.trim();
    if (!name) {
      $('room-error').textContent = 'Give the room a name.';
      return;
    }
    const visibility = new FormData($('room-form')).get('visibility');
    $('room-create').disabled = true;
    try {
      const room = await hub.createRoom(name, { visibility });
      state.rooms.set(room.id, { ...room, unread: 0, last_message: null });
      $('room-dialog').close();
      await loadRooms();
      navigate(room.id);
    } catch (err) {
      $('room-error').textContent = errorText(err);
    } finally {
      $('room-create').disabled = false;
    }
  });

  $('join-room').addEventListener('click', async () => {
    const roomId = state.current;
    try {
      await hub.join(roomId);
      await loadRooms();
      await state.views.get(roomId)?.catchUp();
      loadMembers(roomId);
      $('message-input').focus();
    } catch (err) {
      toast(`Could not join: ${errorText(err)}`);
    }
  });

  $('leave-room').addEventListener('click', async () => {
    const room = state.rooms.get(state.current);
    if (!room) return;
    const warn = room.visibility === 'private' ? ' You will need an invitation to come back.' : '';
    if (!(await confirmDialog(`Leave #${room.name}?`, `You will stop receiving its messages.${warn}`, 'Leave'))) return;
    state.leaving.add(room.id);
    try {
      await hub.leave(room.id);
      dropRoom(room.id);
      navigate(null);
    } catch (err) {
      toast(`Could not leave: ${errorText(err)}`);
    } finally {
      state.leaving.delete(room.id);
    }
  });

  $('members-toggle').addEventListener('click', () => toggleMembers());
  $('members-close').addEventListener('click', () => toggleMembers(false));

  $('invite-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $('invite-name').value.trim();
    if (!name) return;
    try {
      const out = await hub.invite(state.current, name);
      $('invite-status').textContent = out.added ? `${name} was added.` : `${name} is already a member.`;
      $('invite-name').value = '';
      loadMembers(state.current);
    } catch (err) {
      $('invite-status').textContent = err instanceof HubbubError && err.status === 404 ? `No user called ${name}.` : errorText(err);
    }
  });

  // room admins: rename
  $('rename-room').addEventListener('click', () => {
    const room = state.rooms.get(state.current);
    if (!room) return;
    $('rename-form').dataset.room = room.id;
    $('rename-input').value = room.name;
    $('rename-error').textContent = '';
    $('rename-dialog').showModal();
    $('rename-input').select();
  });
  $('rename-cancel').addEventListener('click', () => $('rename-dialog').close());
  $('rename-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const roomId = $('rename-form').dataset.room;
    const name = $('rename-input').value.trim();
    if (!name) {
      $('rename-error').textContent = 'Give the room a name.';
      return;
    }
    const room = state.rooms.get(roomId);
    if (room && name === room.name) {
      $('rename-dialog').close();
      return;
    }
    $('rename-save').disabled = true;
    const before = room?.name;
    try {
      const updated = await hub.updateRoom(roomId, { name });
      // Shown at once; unless a `room_updated` (ours, or a later one) got here first.
      const current = state.rooms.get(roomId);
      if (current && current.name === before) Object.assign(current, { name: updated.name, visibility: updated.visibility });
      renderRooms();
      if (roomId === state.current) {
        renderRoomHeader();
        renderHistoryStatus();
      }
      $('rename-dialog').close();
      $('rename-room').focus();
    } catch (err) {
      $('rename-error').textContent = errorText(err);
    } finally {
      $('rename-save').disabled = false;
    }
  });

  // composer
  const input = $('message-input');
  const grow = () => {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, window.innerHeight * 0.4)}px`;
  };
  input.addEventListener('input', () => {
    grow();
    noteTyping();
  });
  input.addEventListener('blur', () => stopTyping());
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey && !e.isComposing) {
      e.preventDefault();
      $('composer').requestSubmit();
    } else if (e.key === 'ArrowUp' && !input.value) {
      const view = currentView();
      const mine = [...(view?.list.querySelectorAll(`li.msg.own[data-id]:not(.deleted)`) ?? [])].pop();
      if (mine && view.get(mine.dataset.id)?.msg.type === 'text') {
        e.preventDefault();
        startEdit(mine.dataset.id);
      }
    }
  });
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value;
    if (!text.trim() || !state.current) return;
    input.value = '';
    grow();
    state.typingRoom = null; // the server ends our typing when the message lands
    sendText(state.current, text);
  });
  input.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files ?? [])];
    if (files.length) {
      e.preventDefault();
      uploadFiles(files);
    }
  });

  $('attach').addEventListener('click', () => $('file-input').click());
  $('file-input').addEventListener('change', () => {
    uploadFiles([...$('file-input').files]);
    $('file-input').value = '';
  });

  // drag and drop
  const pane = $('room-pane');
  let depth = 0;
  const hasFiles = (e) => [...(e.dataTransfer?.types ?? [])].includes('Files');
  pane.addEventListener('dragenter', (e) => {
    if (!hasFiles(e) || !state.rooms.get(state.current)?.member) return;
    e.preventDefault();
    depth++;
    show($('drop-overlay'), true);
  });
  pane.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  pane.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) show($('drop-overlay'), false);
  });
  pane.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    show($('drop-overlay'), false);
    uploadFiles([...e.dataTransfer.files]);
  });

  // scrolling: older history at the top, read receipts at the bottom
  const box = $('messages');
  box.addEventListener('scroll', () => {
    const view = currentView();
    if (!view) return;
    view.stick = atBottom();
    if (view.stick) {
      show($('jump-new'), false);
      markReadSoon();
    }
    if (box.scrollTop < 200) view.loadOlder();
  }, { passive: true });
  $('jump-new').addEventListener('click', () => {
    scrollToBottom();
    markReadSoon();
    $('message-input').focus();
  });

  // search
  const searchInput = $('search-input');
  let searchTimer = null;
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    clearTimeout(searchTimer);
    runSearch(searchInput.value);
  });
  searchInput.addEventListener('input', () => {
    clearTimeout(searchTimer);
    const q = searchInput.value.trim();
    if (q.length >= 2) searchTimer = setTimeout(() => runSearch(q), 350);
  });
  searchInput.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      e.preventDefault();
      closeSearch();
    }
  });
  $('search-close').addEventListener('click', closeSearch);
  $('search-more').addEventListener('click', () => runSearch(state.search.q, true));

  document.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'k') {
      e.preventDefault();
      searchInput.focus();
      searchInput.select();
    } else if (e.key === 'Escape' && !$('members-panel').hidden && $('members-panel').contains(document.activeElement)) {
      toggleMembers(false);
    }
  });

  document.addEventListener('visibilitychange', () => {
    if (!state.me) return;
    if (document.visibilityState === 'visible') {
      clearTimeout(awayTimer);
      if (state.wasAway) {
        state.wasAway = false;
        hub.setPresence('online').catch(() => {});
      }
      markReadSoon();
    } else {
      clearTimeout(awayTimer);
      awayTimer = setTimeout(() => {
        state.wasAway = true;
        hub.setPresence('away').catch(() => {});
      }, 60_000);
    }
  });
}

let awayTimer = null;

async function main() {
  wire();
  setAuthMode(false);
  try {
    const me = await hub.me();
    await startChat(me);
  } catch (err) {
    if (err instanceof HubbubError && err.status === 401) showAuth();
    else showAuth(`Could not reach the server: ${errorText(err)}`);
  }
}

main();
