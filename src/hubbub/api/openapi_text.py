"""The prose of ``/openapi.json`` for the raw-ASGI routes, kept apart from the code that
assembles the document so each reads on its own. Every number a client could run into comes
from the constant or setting the server enforces, so the text cannot drift from the checks."""

from __future__ import annotations

from typing import Any

from hubbub.api.raw import MAX_JSON_DEPTH
from hubbub.config import Settings
from hubbub.limits import MAX_MESSAGE_CHARS
from hubbub.transports.longpoll import MAX_TIMEOUT


def _default(name: str) -> Any:
    """A setting's default: what the text promises unless the operator changed it."""
    return Settings.model_fields[name].default


def _size(n: int) -> str:
    return f"{n // 2**20} MiB" if n % 2**20 == 0 else f"{n // 2**10} KiB"


def _seconds(value: float) -> str:
    return f"{value:g} s"


# Short names, so the text below keeps its line breaks.
_PING = _seconds(_default("ping_interval"))
_WAIT = f"{MAX_TIMEOUT:g}"
_WS_PING = _seconds(_default("ws_ping_interval"))
_WS_DEAD = _seconds(_default("ws_ping_timeout"))
_CHARS = MAX_MESSAGE_CHARS

STORED_CHANGES = """\
Stored changes — replayed on resume like messages, each with an `id` — are `message_edited`
and `message_deleted` (data: the whole message after the change), `reaction` (`{"message_id",
"room_id", "user_id", "reaction", "action": "added"|"removed", "seq"}`), `member_joined` and
`member_left` (`{"room_id", "user_id", "username"}`) and `room_updated` (data: the room
`{"id", "name", "visibility", "created_by", "created_at", "last_seq"}`). A replay may fold
repeated edits/deletes of one message into the last one (it carries the whole message).
Live only (no `id`, never replayed): `typing` (seed TypingEvent `{"user_id", "room_id",
"is_typing", "username"}`; not sent to the typist), `presence` (seed PresenceEvent `{"user_id",
"status": "online"|"away"|"offline"}`; after `connected`, one per member online now), the
room's `read` receipts (`{"room_id", "user_id", "seq"}`).
"""

STREAM_DESCRIPTION = (
    f"""\
Server-Sent Events for one room (seed route). Frames:

* `retry: <ms>`, then `id: <cursor>` + `event: connected` with `{{"status": "ok", "room_id",
  "user_id"}}` first; then `presence` for each member online now;
* each chat message as `id: <seq>` + `data: <message JSON>` with **no** `event:` line, so
  `EventSource.onmessage` receives it;
* every other stored change as `id: r<number>` + `event: <name>` + `data:`;
* `reset` (`{{"room_id", "oldest_seq"}}`, right after `connected` when the cursor is older than
  what the server keeps);
* `: ping` comment lines at least every {_PING}.

"""
    + STORED_CHANGES
    + """
A fresh stream is live only (load history with the history route). With `Last-Event-ID`
(header, sent by browsers on reconnect) or `?last_event_id=` — any `id` this stream sent: a
message's seq or a change's `r<number>` — every stored change after it is replayed from
storage in order, then the stream goes live: no gap, no duplicate. A client that stops reading
is disconnected once its buffer passes the bound; it resumes the same way. Within a second of
the caller leaving the room or being removed from it (or of the session that opened the stream
ending) the response ends. Headers: `Content-Type: text/event-stream`, `Cache-Control:
no-cache, no-transform`, `X-Accel-Buffering: no`. In trust mode, subscribing creates and joins
a public room.
"""
)

ALL_DESCRIPTION = (
    """\
One Server-Sent Events stream for every room you belong to, plus your personal events, so a
browser tab needs one connection. The first frame is `event: connected` with `{"status",
"user_id", "rooms", "cursor"}` and an `id:` (the cursor), then one `presence` per member of
your rooms online now. Each chat message is `id: <cursor>` + `data: <message JSON>` (no
`event:` line); every stored change is `id: <cursor>` + `event: <name>`. The cursor is an opaque
string — echo it back as `Last-Event-ID` (browsers do) or `?last_event_id=` and everything of
your rooms after it is replayed, rooms joined while you were away included, then the stream
goes live: no gap, no duplicate. Besides the room events, your personal stored changes:
`room_added` (data: the room; you joined, were invited or created it — the stream starts
following it), `room_removed` (`{"room_id"}`; you left or were removed — the stream stops
following it at once), `read` (your own read moves, `{"room_id", "user_id", "seq"}`, so a
second device's unread badge follows). Live only: `room_created` (data: the room) when anyone
creates a public room. A cursor this server did not issue → 400 `invalid_cursor`.

"""
    + STORED_CHANGES
)

POLL_DESCRIPTION = f"""\
Long-poll fallback. Answers at once with what is after `after` when there is any; otherwise
waits (up to `timeout` seconds, at most {_WAIT}) and answers as soon as something arrives, or empty.
A waiting request counts as a connection for presence. No database work while waiting.

Without `changes`: `after` is a message seq and the answer is the array of messages after it
(`[]` on timeout). With `changes=1`: `after` is any id this room's streams send (a message seq
or a change's `r<number>`) and the answer is `{{"events": [{{"event", "id", "data"}}…], "next":
"<id>"}}` holding every stored change (messages, edits, deletes, reactions, membership, room
updates) after it, in order; poll again with `after=<next>`.
"""

# uvicorn enforces the frame limit (``server.py`` gives it 64 KiB).
WS_DESCRIPTION = f"""\
WebSocket with JSON text frames. Authenticate with `Authorization: Bearer`, the session
cookie, or `?ticket=`; browsers' `Origin` must be this host (or `HUBBUB_ALLOWED_ORIGINS`).
Client ops `{{"op", "ref"?, ...}}`: `subscribe {{room_id, after_seq?}}` → `subscribed
{{room_id, head_seq}}` (then `presence` for members online now; with `after_seq` — a message seq
or a change's `"r<number>"` — every stored change after it follows, then live), `unsubscribe
{{room_id}}`, `send {{room_id, message, client_msg_id?, timestamp?}}` → `ack` with the stored
message, `typing {{room_id, is_typing}}`, `read {{room_id, seq}}` → `ok`, `ping` → `pong`.
Server frames `{{"event", "id"?, "ref"?, "data"}}`: a chat message is `event: "message"` with
`id` = seq; a stored change has `id` = `"r<number>"`; your personal changes (`room_added`,
`room_removed`, `read`, ids `g<n>`) and `room_created` arrive without subscribing;
`?after=<g…>` on connect replays the personal changes made since that id. Leaving a room (or
being removed) drops it from the socket within a second (`room_removed`); when the session
that opened the socket ends it closes with 4401. A bad frame → `event: "error"` `{{code,
message}}` (with the frame's `ref`) and the connection stays open. Frames over 64 KiB close with
1009; the server pings every {_WS_PING} and closes a peer that does not answer within {_WS_DEAD}.
"""

SEND_DESCRIPTION = f"""\
Send a message (seed route). `201` only after the message is durably stored; a repeat of a
`client_msg_id` by the same user returns the original with `200` (same `room_id` and
`message`) or `409 idempotency_conflict` (different). Empty or whitespace-only → 422
`empty_message`; over the limit ({_CHARS} code points) → 422 `message_too_long`; unknown room → 404;
not a member → 403 `not_a_member`; over the rate limit → 429 with `Retry-After`.
"""

# What each error status means on this API; every one of them has the one error body.
ERROR_STATUSES: dict[int, str] = {
    400: "Malformed request: JSON that does not parse, is nested deeper than "
    f"{MAX_JSON_DEPTH} levels or holds a lone UTF-16 surrogate; a bad cursor; in trust mode a "
    "malformed `User-ID`",
    401: "Not authenticated: no, bad, expired or revoked credentials",
    403: "Not allowed: not a member, not an admin, `user_id` naming someone else "
    "(`user_mismatch`), or a cookie-authenticated change from another site (`cross_origin`)",
    404: "Unknown, or private and not visible to the caller",
    409: "Conflict (`idempotency_conflict`, `username_taken`, …)",
    413: f"Body too large (JSON: {_size(_default('max_body_bytes'))} by default; uploads: "
    f"{_size(_default('max_upload_bytes'))})",
    415: "Wrong media type: send `application/json`",
    421: "Trust mode: a `Host` that is not the bound address or `localhost` (DNS rebinding)",
    422: "Invalid field: it parsed but is not acceptable (a type, a range, a length, an integer "
    "beyond 2^53, …)",
    429: "Rate limited; `Retry-After` says when to try again",
    503: "Store or broker unavailable, or the server is shutting down; nothing changed",
}

NOTICES_DESCRIPTION = """\
Seed 000's notification stream, for its SolidJS `useSSE('/api/sse')` hook as written: first
`event: connected` (data `{"status": "ok"}`), then every notification your backend sends the
caller with `POST /server/users/{user_id}/notifications` as a plain `message` event whose
`data` is the notification's own `data` JSON. Each has an `id:` (a number): reconnecting with
`Last-Event-ID` (or `?last_event_id=`) replays the notifications stored after it, then goes
live, with no gap and no duplicate. Identity as on every stream (cookie, Bearer, `?ticket=`;
trust mode: `User-ID`, `user_id` or the guest cookie). `/chat/events` and the WebSocket carry the
same notifications as `event: notification` with `{"event", "data", "created_at"}`.
"""
