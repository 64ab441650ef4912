/**
 * hubbub.js — a small browser client for Hubbub (ES module, no dependencies).
 *
 *   import { Hubbub } from '/static/hubbub.js';
 *   const hub = new Hubbub();                  // same origin, session cookie (after login)
 *   hub.on('message', (m) => show(m));         // every room you belong to, in order, once
 *   hub.on('state', ({ state }) => banner(state));
 *   hub.connect();                             // GET /chat/events; resumes by itself
 *   // new Hubbub({ shareTabs: true }): one /chat/events for all of this user's tabs
 *   await hub.send('general', 'hello');        // client_msg_id + retry: never lost, never twice
 *
 * Documented in docs/client-js.md. The web app at `/` is built on it.
 */

/** The named events of `GET /chat/events` (a chat message itself is the unnamed event). */
export const EVENTS = Object.freeze([
  'connected',
  'reset',
  'message_edited',
  'message_deleted',
  'reaction',
  'typing',
  'presence',
  'member_joined',
  'member_left',
  'read',
  'room_updated',
  'room_added',
  'room_removed',
  'room_created',
  'notification',
]);

/** Listener types that are not stream events (see `Hubbub.on`). */
const LOCAL_TYPES = new Set(['message', 'state', 'unauthorized', '*']);

/** An error answer from the server (`{"error": {code, message, details}}`) or a failed call. */
export class HubbubError extends Error {
  /**
   * @param {number} status HTTP status (0 when the request never got an answer)
   * @param {string} code the server's snake_case error code
   * @param {string} message a human sentence
   * @param {unknown} [details]
   * @param {number|null} [retryAfter] seconds, from `Retry-After` (429, 503)
   */
  constructor(status, code, message, details = undefined, retryAfter = null) {
    super(message);
    this.name = 'HubbubError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

/** A random id for `client_msg_id` (works on plain http too, unlike `crypto.randomUUID`). */
export function newClientMsgId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return 'c-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Whether an error is worth retrying: no answer at all, 408, 429 or a 5xx. */
export function isRetryable(error) {
  if (error instanceof HubbubError) {
    return error.status === 0 || error.status === 408 || error.status === 429 || error.status >= 500;
  }
  return error instanceof TypeError; // fetch's "Failed to fetch": the network, not the server
}

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** How many stream ids a tab remembers to drop a repeat (a hand-over may replay a few). */
const SEEN_IDS = 5000;

/** Whether this page can share one stream between its tabs (Web Locks + BroadcastChannel). */
export function canShareTabs() {
  return typeof BroadcastChannel === 'function' && typeof globalThis.navigator?.locks?.request === 'function';
}

/** Exponential back-off with jitter: ~0.5 s, 1 s, 2 s, 4 s … capped at `cap`. */
function backoff(attempt, cap = 10_000) {
  const base = Math.min(cap, 500 * 2 ** attempt);
  return Math.round(base / 2 + Math.random() * (base / 2));
}

export class Hubbub {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl] server origin, '' (default) for the page's own
   * @param {string|(() => string|Promise<string>)|null} [options.token] a bearer token (or a
   *   function returning one, e.g. after a refresh); without it the session cookie is used
   * @param {RequestCredentials} [options.credentials] fetch credentials ('same-origin')
   * @param {number} [options.retries] how many times `send` retries (default 8)
   * @param {(attempt: number) => number} [options.backoff] ms to wait before retry `attempt`
   *   (0, 1, …) when the server gave no `Retry-After`; default ~0.5 s doubling up to 10 s
   * @param {typeof fetch} [options.fetch]
   * @param {typeof EventSource} [options.EventSource]
   * @param {boolean} [options.shareTabs] one `/chat/events` for all of this user's tabs on this
   *   origin (a leader tab holds it and passes every event on); default false. Where Web Locks
   *   or BroadcastChannel are missing (plain http:// other than localhost) each tab has its own
   */
  constructor(options = {}) {
    this.baseUrl = (options.baseUrl ?? '').replace(/\/$/, '');
    this.token = options.token ?? null;
    this.credentials = options.credentials ?? 'same-origin';
    this.retries = options.retries ?? 8;
    this.backoff = options.backoff ?? ((attempt) => backoff(attempt));
    this._fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this._EventSource = options.EventSource ?? globalThis.EventSource;
    this._listeners = new Map();
    this._state = 'closed';
    this._es = null;
    this._cursor = null;
    this._resumed = false;
    this._extra = new Set(); // named events listened to beyond EVENTS (e.g. custom broadcasts)
    this._userId = null;
    this._lastSeq = new Map(); // room_id → newest seq delivered on this connection
    this._queue = Promise.resolve();
    this._attempt = 0;
    this._timer = null;
    this._wanted = false;
    // Tab sharing (see _joinTabs): off when not asked for or not supported.
    this.shareTabs = Boolean(options.shareTabs) && canShareTabs();
    this._role = null; // 'leader' | 'follower' | null
    this._channel = null;
    this._lockAbort = null;
    this._release = null;
    this._welcomed = false;
    this._lastConnected = null;
    this._seen = new Set(); // stream ids already delivered (bounded: SEEN_IDS)
  }

  // events --------------------------------------------------------------------------------

  /**
   * Listen: 'message', every named event of the stream (see EVENTS), 'state'
   * ({state, previous}), 'unauthorized' (the session is gone), or '*' (every event, as
   * `fn(type, data)`). Any other name is listened to on the stream as well (a server's
   * custom broadcast event). Returns a function that removes the listener.
   */
  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    if (!LOCAL_TYPES.has(type) && !EVENTS.includes(type) && !this._extra.has(type)) {
      this._extra.add(type);
      if (this._es) this._listen(this._es, type);
      if (this._role === 'follower') this._post({ kind: 'listen', types: [type] });
    }
    return () => this.off(type, fn);
  }

  off(type, fn) {
    this._listeners.get(type)?.delete(fn);
  }

  emit(type, data) {
    for (const fn of this._listeners.get(type) ?? []) {
      try {
        fn(data);
      } catch (err) {
        console.error(`hubbub: a '${type}' listener failed`, err);
      }
    }
    if (type !== 'state') {
      for (const fn of this._listeners.get('*') ?? []) {
        try {
          fn(type, data);
        } catch (err) {
          console.error('hubbub: a * listener failed', err);
        }
      }
    }
  }

  /** 'closed' | 'connecting' | 'open' | 'reconnecting' */
  get state() {
    return this._state;
  }

  /** The stream's opaque cursor: the last `id:` seen (pass it to `connect` to resume later). */
  get cursor() {
    return this._cursor;
  }

  /**
   * Whether the newest `connected` resumed from a cursor: the server then replays every
   * stored change after it (messages, edits, deletes, reactions, membership, room changes,
   * your read pointers), so nothing needs reloading. `false` for a fresh stream, which is live
   * only: load history (and the room list) after it, as for a first page load.
   */
  get resumed() {
    return this._resumed;
  }

  /**
   * With `shareTabs`: true while this tab holds the shared stream, false while another tab
   * does (this one gets its events from it). Without: true while connected.
   */
  get leader() {
    return this.shareTabs ? this._role === 'leader' : this._wanted;
  }

  /** The caller's user id, from the stream's `connected` event. */
  get userId() {
    return this._userId;
  }

  _setState(state) {
    if (state === this._state) return;
    const previous = this._state;
    this._state = state;
    if (this._role === 'leader') this._post({ kind: 'state', state });
    this.emit('state', { state, previous });
  }

  // the stream ----------------------------------------------------------------------------

  /**
   * Open `GET /chat/events`: one stream for every room you belong to. The browser resumes by
   * itself after a drop (`Last-Event-ID`); when it gives up (an error status, a spent ticket)
   * this client reconnects with back-off and `?last_event_id=`, so nothing is missed. Messages
   * are delivered once each, in `seq` order per room; a hole (which the server should never
   * leave) is filled from history before going on.
   * @param {{cursor?: string}} [options] resume from a cursor you kept
   */
  connect(options = {}) {
    if (options.cursor) this._cursor = options.cursor;
    this._wanted = true;
    if (this._es || this._timer || this._role) return;
    this._setState(this._cursor ? 'reconnecting' : 'connecting');
    if (this.shareTabs) this._joinTabs();
    else this._open();
  }

  /** Close the stream (no reconnection). A leader tab hands the shared stream to another. */
  close() {
    this._wanted = false;
    clearTimeout(this._timer);
    this._timer = null;
    this._es?.close();
    this._es = null;
    this._lockAbort?.abort();
    this._release?.();
    this._channel?.close();
    this._channel = null;
    this._lockAbort = null;
    this._release = null;
    this._role = null;
    this._welcomed = false;
    this._setState('closed');
  }

  // one stream for all tabs ---------------------------------------------------------------
  //
  // Every tab of one user on one origin asks for the same Web Lock. The tab that holds it (the
  // leader) opens /chat/events and posts every event — its name, data and own `id:` — on a
  // BroadcastChannel of the same name; the others (followers) deliver what arrives there. The
  // browser releases the lock when the leader closes or crashes; the next tab in the queue then
  // opens the stream from the last id it saw (`?last_event_id=`), so the server replays what
  // fell in between. BroadcastChannel keeps the leader's order, and each tab drops an id it has
  // already delivered (and a message `seq` it has), so nothing arrives twice across the change.

  async _joinTabs() {
    this._role = 'joining';
    const joining = (this._joining = {}); // a close() + connect() meanwhile starts another
    for (let attempt = 0; !this._userId; attempt++) {
      try {
        this._userId = (await this.me()).id; // the lock is per user: tokens may differ by tab
      } catch (err) {
        if (err instanceof HubbubError && err.status === 401) {
          this.close();
          this.emit('unauthorized', err);
          return;
        }
        if (!this._wanted) return;
        await sleep(backoff(attempt, 15_000));
      }
      if (!this._wanted) return;
    }
    if (this._joining !== joining || !this._wanted) return;
    const origin = this.baseUrl || globalThis.location?.origin || '';
    const name = `hubbub:events:${origin}:${this._userId}`;
    const channel = new BroadcastChannel(name);
    this._channel = channel;
    this._role = 'follower';
    channel.onmessage = (e) => this._fromTab(e.data);
    const abort = new AbortController();
    this._lockAbort = abort;
    this._post({ kind: 'hello' });
    navigator.locks
      .request(name, { signal: abort.signal }, () => this._lead(channel))
      .catch(() => {}); // aborted by close()
  }

  _lead(channel) {
    if (!this._wanted || this._channel !== channel) return undefined;
    this._role = 'leader';
    this._welcomed = true;
    this._post({ kind: 'leader' });
    this._setState(this._cursor ? 'reconnecting' : 'connecting');
    this._open();
    return new Promise((resolve) => {
      this._release = resolve; // held until close() (or until the tab goes away)
    });
  }

  _post(message) {
    try {
      this._channel?.postMessage(message);
    } catch (err) {
      console.warn('hubbub: could not tell the other tabs', err);
    }
  }

  _fromTab(msg) {
    if (!msg || typeof msg !== 'object') return;
    if (this._role === 'leader') {
      if (msg.kind === 'hello' && this._lastConnected) {
        this._post({ kind: 'welcome', state: this._state, connected: this._lastConnected, cursor: this._cursor });
      } else if (msg.kind === 'listen') {
        for (const type of msg.types ?? []) {
          if (LOCAL_TYPES.has(type) || EVENTS.includes(type) || this._extra.has(type)) continue;
          this._extra.add(type);
          if (this._es) this._listen(this._es, type);
        }
      }
      return;
    }
    if (this._role !== 'follower') return;
    if (msg.kind === 'leader') {
      // A new leader: tell it which extra event names this tab listens to.
      if (this._extra.size) this._post({ kind: 'listen', types: [...this._extra] });
      if (!this._welcomed) this._post({ kind: 'hello' });
    } else if (msg.kind === 'state') {
      this._setState(msg.state);
    } else if (msg.kind === 'welcome' && !this._welcomed) {
      // Joining a stream that is already live: live from the leader's place on, as a fresh
      // stream is (resumed false: load history after `connected`).
      this._welcomed = true;
      this._cursor = null;
      this._accept('connected', msg.connected, null);
      if (msg.cursor) this._cursor = msg.cursor;
      this._setState(msg.state);
    } else if (msg.kind === 'event' && (this._welcomed || msg.type === 'connected')) {
      this._welcomed = true;
      this._accept(msg.type, msg.data, msg.id);
    }
  }

  _listen(es, name) {
    const handler = (e) => this._receive(name, e, es);
    if (name === 'message') es.onmessage = handler;
    else es.addEventListener(name, handler);
  }

  async _open() {
    this._timer = null;
    const params = new URLSearchParams();
    if (this._cursor) params.set('last_event_id', this._cursor);
    if (this.token) {
      try {
        params.set('ticket', (await this.ticket()).ticket);
      } catch (err) {
        this._reconnectLater(err);
        return;
      }
    }
    if (!this._wanted) return;
    const query = params.toString();
    const url = `${this.baseUrl}/chat/events${query ? '?' + query : ''}`;
    const es = new this._EventSource(url, { withCredentials: this.credentials === 'include' });
    this._es = es;
    es.onopen = () => {
      if (this._es !== es) return;
      this._attempt = 0;
      this._setState('open');
    };
    es.onerror = () => {
      if (this._es !== es) return;
      // CONNECTING: the browser retries by itself with Last-Event-ID. CLOSED: it gave up.
      // A ticket is single-use, so with a token every retry needs a fresh URL: do it here.
      if (es.readyState === this._EventSource.CLOSED || this.token) {
        es.close();
        this._es = null;
        this._reconnectLater(null);
      }
      this._setState('reconnecting');
    };
    es._hubbubLastId = '';
    for (const name of ['message', ...EVENTS, ...this._extra]) this._listen(es, name);
  }

  async _reconnectLater(error) {
    if (!this._wanted) return;
    this._setState('reconnecting');
    // An error status ends EventSource without telling which: ask who we are.
    let status = error instanceof HubbubError ? error.status : null;
    if (status === null) {
      try {
        await this.me();
      } catch (err) {
        status = err instanceof HubbubError ? err.status : null;
      }
    }
    if (status === 401) {
      this.close();
      this.emit('unauthorized', error);
      return;
    }
    if (!this._wanted) return;
    this._timer = setTimeout(() => this._open(), backoff(this._attempt++, 15_000));
  }

  _receive(type, e, es) {
    if (es !== this._es) return;
    // EventSource's lastEventId sticks from frame to frame: a frame has an id of its own only
    // when it differs from the one before (the server never repeats one on a connection).
    const id = e.lastEventId && e.lastEventId !== es._hubbubLastId ? e.lastEventId : null;
    es._hubbubLastId = e.lastEventId;
    if (type === 'connected') this._lastConnected = e.data;
    if (this._role === 'leader') this._post({ kind: 'event', type, data: e.data, id });
    this._accept(type, e.data, id);
  }

  _accept(type, raw, id) {
    // A `connected` that follows a cursor is a resume (the browser sent Last-Event-ID, or we
    // sent ?last_event_id=): the server replays what was missed. Cursors are opaque strings.
    const resumed = type === 'connected' ? this._cursor !== null : undefined;
    if (id) {
      if (type !== 'connected') {
        if (this._seen.has(id)) return; // delivered already (a hand-over replayed it)
        this._seen.add(id);
        if (this._seen.size > SEEN_IDS) this._seen.delete(this._seen.values().next().value);
      }
      this._cursor = id;
    }
    let data;
    try {
      data = JSON.parse(raw);
    } catch {
      return;
    }
    // One queue keeps delivery in order even while a hole is being filled.
    this._queue = this._queue.then(() => {
      if (resumed !== undefined) this._resumed = resumed;
      return this._deliver(type, data);
    }).catch((err) => {
      console.error('hubbub: delivering an event failed', err);
    });
  }

  async _deliver(type, data) {
    if (type === 'message') {
      const room = data.room_id;
      const last = this._lastSeq.get(room);
      if (last !== undefined && data.seq <= last) return; // already delivered
      if (last !== undefined && data.seq > last + 1) await this._fill(room, last, data.seq);
      this._lastSeq.set(room, data.seq);
      this.emit('message', data);
      return;
    }
    if (type === 'connected') this._userId = data.user_id ?? this._userId;
    if (type === 'reset') this._lastSeq.delete(data.room_id);
    // Out of a room: if it comes back (a new join), its messages start over from the join.
    if (type === 'member_left' && data.user_id === this._userId) this._lastSeq.delete(data.room_id);
    if (type === 'room_removed') this._lastSeq.delete(data.room_id);
    this.emit(type, data);
  }

  async _fill(room, last, upTo) {
    let after = last;
    try {
      while (after < upTo - 1) {
        const page = await this.history(room, { after, before: upTo, limit: 200 });
        if (!page.length) break;
        for (const m of page) {
          if (m.seq > after) {
            after = m.seq;
            this._lastSeq.set(room, m.seq);
            this.emit('message', m);
          }
        }
      }
    } catch (err) {
      console.warn('hubbub: could not fill a gap in', room, err);
    }
  }

  // HTTP ----------------------------------------------------------------------------------

  /**
   * One JSON call. Throws HubbubError for an error status, TypeError when there is no answer.
   * @param {string} method
   * @param {string} path e.g. '/chat/rooms'
   * @param {{body?: unknown, query?: Record<string, unknown>, signal?: AbortSignal}} [init]
   */
  async request(method, path, { body, query, signal } = {}) {
    let url = this.baseUrl + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) {
        if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
      }
      const qs = params.toString();
      if (qs) url += '?' + qs;
    }
    const headers = { Accept: 'application/json' };
    const token = typeof this.token === 'function' ? await this.token() : this.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers, credentials: this.credentials, signal };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await this._fetch(url, init);
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    if (!res.ok) {
      const err = data && typeof data === 'object' && data.error ? data.error : {};
      const retry = Number.parseFloat(res.headers.get('Retry-After') ?? '');
      throw new HubbubError(
        res.status,
        err.code ?? `http_${res.status}`,
        err.message ?? (res.statusText || `HTTP ${res.status}`),
        err.details,
        Number.isFinite(retry) ? retry : null,
      );
    }
    return data;
  }

  /**
   * Run `fn` until it succeeds, retrying what is worth retrying (see isRetryable) with
   * back-off, honouring `Retry-After`. `onRetry({attempt, delay, error})` is told each time.
   */
  async retry(fn, { retries = this.retries, signal, onRetry } = {}) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        if (attempt >= retries || !isRetryable(error) || signal?.aborted) throw error;
        const delay =
          error instanceof HubbubError && error.retryAfter !== null
            ? Math.max(0, error.retryAfter * 1000)
            : this.backoff(attempt);
        onRetry?.({ attempt: attempt + 1, delay, error });
        await sleep(delay, signal);
      }
    }
  }

  /**
   * Send a text message. A `client_msg_id` is generated (or give yours): retries after a
   * network error, a 5xx or a 429 reuse it, so the server stores the message once whatever
   * happens. Resolves with the stored message (its `id`, `seq`, …).
   * @param {string} roomId
   * @param {string} text
   * @param {{clientMsgId?: string, timestamp?: number|string, retries?: number,
   *          signal?: AbortSignal, onRetry?: Function}} [options]
   */
  async send(roomId, text, options = {}) {
    const body = {
      room_id: roomId,
      message: text,
      client_msg_id: options.clientMsgId ?? newClientMsgId(),
      timestamp: options.timestamp ?? Date.now(),
    };
    const out = await this.retry(() => this.request('POST', '/chat/messages', { body, signal: options.signal }), options);
    return out.message;
  }

  /**
   * Upload a file to a room (multipart; the server streams it to disk). Resolves with the
   * `type: "file"` message. `onProgress(fraction)` follows the upload. Not retried: an upload
   * has no idempotency key.
   */
  upload(roomId, file, { caption, onProgress, signal } = {}) {
    const form = new FormData();
    form.append('file', file, file.name);
    if (caption) form.append('message', caption);
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', `${this.baseUrl}/chat/room/${encodeURIComponent(roomId)}/files`);
      xhr.withCredentials = this.credentials === 'include';
      xhr.responseType = 'json';
      const go = (token) => {
        if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
        xhr.send(form);
      };
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) onProgress?.(e.loaded / e.total);
      };
      xhr.onload = () => {
        const data = xhr.response;
        if (xhr.status >= 200 && xhr.status < 300) {
          resolve(data.message);
          return;
        }
        const err = data?.error ?? {};
        reject(new HubbubError(xhr.status, err.code ?? `http_${xhr.status}`, err.message ?? `HTTP ${xhr.status}`, err.details));
      };
      xhr.onerror = () => reject(new HubbubError(0, 'network_error', 'the upload did not reach the server'));
      xhr.onabort = () => reject(new HubbubError(0, 'aborted', 'the upload was cancelled'));
      signal?.addEventListener('abort', () => xhr.abort(), { once: true });
      if (typeof this.token === 'function') Promise.resolve(this.token()).then(go, reject);
      else go(this.token);
    });
  }

  // accounts ------------------------------------------------------------------------------

  register(username, password) {
    return this.request('POST', '/auth/register', { body: { username, password } });
  }

  /** Signs in; the server also sets the HttpOnly session cookie that the stream uses. */
  login(username, password) {
    return this.request('POST', '/auth/login', { body: { username, password } });
  }

  async logout() {
    this.close();
    return this.request('POST', '/auth/logout', { body: {} });
  }

  me() {
    return this.request('GET', '/auth/me');
  }

  ticket() {
    return this.request('POST', '/auth/ticket', { body: {} });
  }

  // rooms ---------------------------------------------------------------------------------

  /** `{rooms: [...]}`: yours (with `unread` and `last_message`) and every public one. */
  rooms() {
    return this.request('GET', '/chat/rooms');
  }

  createRoom(name, { visibility = 'public', id } = {}) {
    return this.request('POST', '/chat/rooms', { body: { name, visibility, ...(id ? { id } : {}) } });
  }

  room(roomId) {
    return this.request('GET', `/chat/room/${encodeURIComponent(roomId)}`);
  }

  join(roomId) {
    return this.request('POST', `/chat/room/${encodeURIComponent(roomId)}/join`, { body: {} });
  }

  leave(roomId) {
    return this.request('POST', `/chat/room/${encodeURIComponent(roomId)}/leave`, { body: {} });
  }

  members(roomId) {
    return this.request('GET', `/chat/room/${encodeURIComponent(roomId)}/members`);
  }

  invite(roomId, username) {
    return this.request('POST', `/chat/room/${encodeURIComponent(roomId)}/members`, { body: { username } });
  }

  /** Room admins: `{name?, visibility?}` → the room (streamed to members as `room_updated`). */
  updateRoom(roomId, changes) {
    return this.request('PATCH', `/chat/room/${encodeURIComponent(roomId)}`, { body: changes });
  }

  /** Room admins: remove a member (streamed as `member_left`; they get `room_removed`). */
  removeMember(roomId, userId) {
    return this.request(
      'DELETE',
      `/chat/room/${encodeURIComponent(roomId)}/members/${encodeURIComponent(userId)}`,
    );
  }

  // messages ------------------------------------------------------------------------------

  /** Messages oldest first; without before/after the newest `limit`. */
  history(roomId, { before, after, limit = 50 } = {}) {
    return this.request('GET', `/chat/room/${encodeURIComponent(roomId)}/history`, {
      query: { before, after, limit },
    });
  }

  edit(messageId, text) {
    return this.request('PATCH', `/chat/messages/${encodeURIComponent(messageId)}`, { body: { message: text } });
  }

  deleteMessage(messageId) {
    return this.request('DELETE', `/chat/messages/${encodeURIComponent(messageId)}`);
  }

  react(messageId, reaction) {
    return this.request('POST', `/chat/messages/${encodeURIComponent(messageId)}/reactions`, { body: { reaction } });
  }

  unreact(messageId, reaction) {
    return this.request(
      'DELETE',
      `/chat/messages/${encodeURIComponent(messageId)}/reactions/${encodeURIComponent(reaction)}`,
    );
  }

  markRead(roomId, seq) {
    return this.request('POST', `/chat/room/${encodeURIComponent(roomId)}/read`, { body: { seq } });
  }

  typing(roomId, isTyping) {
    return this.request('POST', `/chat/room/${encodeURIComponent(roomId)}/typing`, { body: { is_typing: isTyping } });
  }

  setPresence(status) {
    return this.request('PUT', '/chat/presence', { body: { status } });
  }

  /** `{results, next_before}`; pass `next_before` back as `before` for the next page. */
  search(q, { roomId, before, limit } = {}) {
    return this.request('GET', '/chat/search', { query: { q, room_id: roomId, before, limit } });
  }
}

/**
 * Split `text` by search `highlights` ([start, end) in Unicode code points) into
 * `[{text, match}]` pieces — render each as text, never as HTML.
 */
export function highlightPieces(text, highlights = []) {
  const chars = Array.from(text);
  const out = [];
  let at = 0;
  for (const [start, end] of [...highlights].sort((a, b) => a[0] - b[0])) {
    if (start < at) continue;
    if (start > at) out.push({ text: chars.slice(at, start).join(''), match: false });
    out.push({ text: chars.slice(start, end).join(''), match: true });
    at = end;
  }
  if (at < chars.length) out.push({ text: chars.slice(at).join(''), match: false });
  return out;
}
