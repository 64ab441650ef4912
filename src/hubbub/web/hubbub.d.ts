// Type declarations of hubbub.js (written by hand; tests/browser/test_client_package.py checks
// that every export and every public member of Hubbub here exists in the module, and back).
// Field names and meanings: docs/client-js.md and the server's docs/api.md.

/** The named events of `GET /chat/events` (a chat message itself is the unnamed event). */
export declare const EVENTS: readonly [
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
];

export type StreamEvent = (typeof EVENTS)[number];
export type ConnectionState = 'closed' | 'connecting' | 'open' | 'reconnecting';

export interface FileInfo {
  id: string;
  name: string;
  content_type: string;
  size: number;
  url: string;
  [extra: string]: unknown;
}

export interface Reaction {
  reaction: string;
  count: number;
  user_ids?: string[];
  [extra: string]: unknown;
}

export interface Message {
  id: string;
  room_id: string;
  seq: number;
  user_id: string;
  username: string;
  type: 'text' | 'file' | string;
  text: string;
  created_at: string;
  timestamp: number | string | null;
  client_msg_id: string | null;
  edited_at: string | null;
  deleted: boolean;
  reactions: Reaction[] | Record<string, unknown>;
  file: FileInfo | null;
  [extra: string]: unknown;
}

export interface Room {
  id: string;
  name: string;
  visibility: 'public' | 'private';
  created_by: string;
  created_at: string;
  last_seq: number;
  unread?: number;
  last_message?: Message | null;
  [extra: string]: unknown;
}

export interface Connected {
  status: 'ok';
  user_id: string;
  rooms: string[];
  cursor: string;
}

export interface ReactionEvent {
  message_id: string;
  user_id: string;
  reaction: string;
  room_id: string;
  seq?: number;
  action: 'added' | 'removed';
}

export interface TypingEvent {
  user_id: string;
  room_id: string;
  is_typing: boolean;
  username?: string;
}

export interface PresenceEvent {
  user_id: string;
  status: 'online' | 'away' | 'offline';
}

export interface MemberEvent {
  room_id: string;
  user_id: string;
  username?: string;
}

export interface ReadEvent {
  room_id: string;
  user_id: string;
  seq: number;
}

export interface NotificationEvent {
  event: string;
  data: unknown;
  created_at: string;
}

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
}

/** What each listener type of `Hubbub.on` is called with. */
export interface HubbubEventMap {
  message: Message;
  connected: Connected;
  reset: { room_id: string; oldest_seq: number };
  message_edited: Message;
  message_deleted: Message;
  reaction: ReactionEvent;
  typing: TypingEvent;
  presence: PresenceEvent;
  member_joined: MemberEvent;
  member_left: MemberEvent;
  read: ReadEvent;
  room_updated: Room;
  room_added: Room;
  room_removed: { room_id: string };
  room_created: Room;
  notification: NotificationEvent;
  state: StateChange;
  unauthorized: unknown;
}

export interface HubbubOptions {
  /** The server's origin; '' (default) for the page's own. */
  baseUrl?: string;
  /** A bearer access token, or a function returning one; without it the session cookie. */
  token?: string | (() => string | Promise<string>) | null;
  /** fetch credentials (default 'same-origin'; 'include' for a cookie on another origin). */
  credentials?: RequestCredentials;
  /** How many times `send` retries (default 8). */
  retries?: number;
  /** ms to wait before retry `attempt` when there is no Retry-After. */
  backoff?: (attempt: number) => number;
  fetch?: typeof fetch;
  EventSource?: typeof EventSource;
  /**
   * One `/chat/events` for all of this user's tabs on this origin (default false). Needs Web
   * Locks and BroadcastChannel (a secure context: https:// or localhost); else each tab has
   * its own stream.
   */
  shareTabs?: boolean;
}

export interface RetryOptions {
  retries?: number;
  signal?: AbortSignal;
  onRetry?: (info: { attempt: number; delay: number; error: unknown }) => void;
}

export interface SendOptions extends RetryOptions {
  clientMsgId?: string;
  timestamp?: number | string;
}

export interface UploadOptions {
  caption?: string;
  onProgress?: (fraction: number) => void;
  signal?: AbortSignal;
}

export interface RequestInit {
  body?: unknown;
  query?: Record<string, unknown>;
  signal?: AbortSignal;
}

export interface Tokens {
  access_token: string;
  refresh_token: string;
  token_type: string;
  expires_in: number;
}

export interface SearchResults {
  results: (Message & { highlights?: [number, number][] })[];
  next_before: string | null;
}

/** An error answer from the server (`{"error": {code, message, details}}`) or a failed call. */
export declare class HubbubError extends Error {
  constructor(
    status: number,
    code: string,
    message: string,
    details?: unknown,
    retryAfter?: number | null,
  );
  /** HTTP status; 0 when the request never got an answer. */
  status: number;
  code: string;
  details: unknown;
  /** Seconds, from Retry-After (429, 503). */
  retryAfter: number | null;
}

export declare class Hubbub {
  constructor(options?: HubbubOptions);

  baseUrl: string;
  token: HubbubOptions['token'];
  credentials: RequestCredentials;
  retries: number;
  backoff: (attempt: number) => number;
  /** Whether this client shares one stream with the user's other tabs (asked for and supported). */
  readonly shareTabs: boolean;

  on<K extends keyof HubbubEventMap>(type: K, fn: (data: HubbubEventMap[K]) => void): () => void;
  on(type: '*', fn: (type: string, data: unknown) => void): () => void;
  /** Any other name: a custom event of your server's broadcasts, listened to on the stream. */
  on(type: string, fn: (data: any) => void): () => void;
  off(type: string, fn: (...args: any[]) => void): void;
  emit(type: string, data: unknown): void;

  readonly state: ConnectionState;
  /** The last `id:` seen: an opaque string, only ever echoed back. */
  readonly cursor: string | null;
  /** Whether the latest `connected` resumed from a cursor. */
  readonly resumed: boolean;
  /** With shareTabs: whether this tab holds the shared stream. Without: whether connected. */
  readonly leader: boolean;
  readonly userId: string | null;

  connect(options?: { cursor?: string }): void;
  close(): void;

  request<T = any>(method: string, path: string, init?: RequestInit): Promise<T>;
  retry<T>(fn: () => Promise<T>, options?: RetryOptions): Promise<T>;
  send(roomId: string, text: string, options?: SendOptions): Promise<Message>;
  upload(roomId: string, file: File | Blob & { name: string }, options?: UploadOptions): Promise<Message>;

  register(
    username: string,
    password: string,
  ): Promise<{ id: string; username: string; created_at: string }>;
  login(username: string, password: string): Promise<Tokens>;
  logout(): Promise<unknown>;
  me(): Promise<{ id: string; username: string }>;
  ticket(): Promise<{ ticket: string; expires_in: number }>;

  rooms(): Promise<{ rooms: Room[] }>;
  createRoom(name: string, options?: { visibility?: 'public' | 'private'; id?: string }): Promise<Room>;
  room(roomId: string): Promise<Room>;
  join(roomId: string): Promise<unknown>;
  leave(roomId: string): Promise<unknown>;
  members(roomId: string): Promise<unknown>;
  invite(roomId: string, username: string): Promise<unknown>;
  updateRoom(roomId: string, changes: { name?: string; visibility?: 'public' | 'private' }): Promise<Room>;
  removeMember(roomId: string, userId: string): Promise<{ removed: unknown }>;

  history(roomId: string, options?: { before?: number; after?: number; limit?: number }): Promise<Message[]>;
  edit(messageId: string, text: string): Promise<unknown>;
  deleteMessage(messageId: string): Promise<unknown>;
  react(messageId: string, reaction: string): Promise<unknown>;
  unreact(messageId: string, reaction: string): Promise<unknown>;
  markRead(roomId: string, seq: number): Promise<unknown>;
  typing(roomId: string, isTyping: boolean): Promise<unknown>;
  setPresence(status: 'online' | 'away'): Promise<unknown>;
  search(
    q: string,
    options?: { roomId?: string; before?: string; limit?: number },
  ): Promise<SearchResults>;
}

/** A random `client_msg_id` (works on plain http too, unlike crypto.randomUUID). */
export declare function newClientMsgId(): string;

/** Whether an error is worth retrying: no answer at all, 408, 429 or a 5xx. */
export declare function isRetryable(error: unknown): boolean;

/** Whether this page can share one stream between its tabs (Web Locks + BroadcastChannel). */
export declare function canShareTabs(): boolean;

/** Cut `text` by search highlights ([start, end) in code points); render pieces as text. */
export declare function highlightPieces(
  text: string,
  highlights?: [number, number][],
): { text: string; match: boolean }[];
