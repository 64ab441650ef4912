"""OpenAPI entries for the raw-ASGI routes, so ``/openapi.json`` describes the whole API."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from hubbub.api.schemas import ErrorBody, MessageOut, SendIn, SendOut

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
    """\
Server-Sent Events for one room (seed route). Frames:

* `retry: <ms>`, then `id: <cursor>` + `event: connected` with `{"status": "ok", "room_id",
  "user_id"}` first; then `presence` for each member online now;
* each chat message as `id: <seq>` + `data: <message JSON>` with **no** `event:` line, so
  `EventSource.onmessage` receives it;
* every other stored change as `id: r<number>` + `event: <name>` + `data:`;
* `reset` (`{"room_id", "oldest_seq"}`, right after `connected` when the cursor is older than
  what the server keeps);
* `: ping` comment lines at least every 15 s.

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

POLL_DESCRIPTION = """\
Long-poll fallback. Answers at once with what is after `after` when there is any; otherwise
waits (up to `timeout` seconds, at most 60) and answers as soon as something arrives, or empty.
A waiting request counts as a connection for presence. No database work while waiting.

Without `changes`: `after` is a message seq and the answer is the array of messages after it
(`[]` on timeout). With `changes=1`: `after` is any id this room's streams send (a message seq
or a change's `r<number>`) and the answer is `{"events": [{"event", "id", "data"}…], "next":
"<id>"}` holding every stored change (messages, edits, deletes, reactions, membership, room
updates) after it, in order; poll again with `after=<next>`.
"""

WS_DESCRIPTION = """\
WebSocket with JSON text frames. Authenticate with `Authorization: Bearer`, the session
cookie, or `?ticket=`; browsers' `Origin` must be this host (or `HUBBUB_ALLOWED_ORIGINS`).
Client ops `{"op", "ref"?, ...}`: `subscribe {room_id, after_seq?}` → `subscribed
{room_id, head_seq}` (then `presence` for members online now; with `after_seq` — a message seq
or a change's `"r<number>"` — every stored change after it follows, then live), `unsubscribe
{room_id}`, `send {room_id, message, client_msg_id?, timestamp?}` → `ack` with the stored
message, `typing {room_id, is_typing}`, `read {room_id, seq}` → `ok`, `ping` → `pong`.
Server frames `{"event", "id"?, "ref"?, "data"}`: a chat message is `event: "message"` with
`id` = seq; a stored change has `id` = `"r<number>"`; your personal changes (`room_added`,
`room_removed`, `read`, ids `g<n>`) and `room_created` arrive without subscribing;
`?after=<g…>` on connect replays the personal changes made since that id. Leaving a room (or
being removed) drops it from the socket within a second (`room_removed`); when the session
that opened the socket ends it closes with 4401. A bad frame → `event: "error"` `{code,
message}` (with the frame's `ref`) and the connection stays open. Frames over 64 KiB close with
1009; the server pings every 20 s and closes a peer that does not answer within 20 s.
"""

SEND_DESCRIPTION = """\
Send a message (seed route). `201` only after the message is durably stored; a repeat of a
`client_msg_id` by the same user returns the original with `200` (same `room_id` and
`message`) or `409 idempotency_conflict` (different). Empty or whitespace-only → 422
`empty_message`; over the limit (4000 code points) → 422 `message_too_long`; unknown room → 404;
not a member → 403 `not_a_member`; over the rate limit → 429 with `Retry-After`.
"""


CHANGES_PAGE: dict[str, Any] = {
    "type": "object",
    "required": ["events", "next"],
    "properties": {
        "events": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["event", "id", "data"],
                "properties": {
                    "event": {"type": "string"},
                    "id": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                    "data": {"type": "object"},
                },
            },
        },
        "next": {"type": "string"},
    },
}


def _error_responses(*codes: int) -> dict[str, Any]:
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    return {str(c): {"description": "error", **ref} for c in codes}


def _param(
    name: str,
    where: str,
    schema: dict[str, Any],
    *,
    required: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "required": required, "schema": schema}
    if description is not None:
        param["description"] = description
    return param


def _schema(model: Any) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ErrorBody, MessageOut, SendIn, SendOut):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in model_schema.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components[model.__name__] = model_schema
        auth_params = [
            _param(
                "User-ID", "header", {"type": "string"}, description="trust mode identity (seed)"
            ),
        ]
        schema["paths"]["/chat/messages"] = {
            "post": {
                "tags": ["messages"],
                "summary": "Send a message",
                "description": SEND_DESCRIPTION,
                "operationId": "send_message",
                "parameters": auth_params,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(SendIn)}},
                },
                "responses": {
                    "201": {
                        "description": "stored",
                        "content": {"application/json": {"schema": _schema(SendOut)}},
                    },
                    "200": {
                        "description": "repeat of a client_msg_id: the original",
                        "content": {"application/json": {"schema": _schema(SendOut)}},
                    },
                    **_error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
                },
            }
        }
        schema["paths"]["/chat/events"] = {
            "get": {
                "tags": ["streams"],
                "summary": "SSE stream of all my rooms",
                "description": ALL_DESCRIPTION,
                "operationId": "all_events",
                "parameters": [
                    _param(
                        "last_event_id",
                        "query",
                        {"type": "string"},
                        description="a cursor from an id: line",
                    ),
                    _param("ticket", "query", {"type": "string"}),
                    _param("Last-Event-ID", "header", {"type": "string"}),
                    *auth_params,
                ],
                "responses": {
                    "200": {
                        "description": "the event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_error_responses(400, 401, 503),
                },
            }
        }
        schema["paths"]["/chat/room/{room_id}/poll"] = {
            "get": {
                "tags": ["streams"],
                "summary": "Long-poll one room",
                "description": POLL_DESCRIPTION,
                "operationId": "poll_room",
                "parameters": [
                    _param("room_id", "path", {"type": "string"}, required=True),
                    _param(
                        "after",
                        "query",
                        {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]},
                        description="the newest seq you have (with changes=1: any id of this "
                        "room, e.g. r42); default: the room's head",
                    ),
                    _param(
                        "changes",
                        "query",
                        {"type": "string", "enum": ["0", "1"]},
                        description="1: every stored change, as {events, next}",
                    ),
                    _param(
                        "timeout",
                        "query",
                        {"type": "number", "minimum": 0, "maximum": 60, "default": 25},
                    ),
                    _param(
                        "limit",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": 200, "default": 100},
                    ),
                    *auth_params,
                ],
                "responses": {
                    "200": {
                        "description": "messages after `after`, oldest first ([] on timeout); "
                        "with changes=1, {events, next}",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"type": "array", "items": _schema(MessageOut)},
                                        CHANGES_PAGE,
                                    ]
                                }
                            }
                        },
                    },
                    **_error_responses(401, 403, 404, 422, 503),
                },
            }
        }
        schema["paths"]["/chat/ws"] = {
            "get": {
                "tags": ["streams"],
                "summary": "WebSocket (JSON frames)",
                "description": WS_DESCRIPTION,
                "operationId": "websocket",
                "responses": {
                    "101": {"description": "switching to WebSocket"},
                    "403": {"description": "Origin not allowed"},
                },
            }
        }
        schema["paths"]["/chat/room/{room_id}/events"] = {
            "get": {
                "tags": ["streams"],
                "summary": "SSE stream of one room",
                "description": STREAM_DESCRIPTION,
                "operationId": "room_events",
                "parameters": [
                    _param("room_id", "path", {"type": "string"}, required=True),
                    _param(
                        "user_id",
                        "query",
                        {"type": "string"},
                        description="seed; in jwt mode must be the caller",
                    ),
                    _param(
                        "last_event_id",
                        "query",
                        {"type": "string"},
                        description="any id this stream sent: a seq, or r<number>",
                    ),
                    _param(
                        "ticket",
                        "query",
                        {"type": "string"},
                        description="one-time ticket from POST /auth/ticket",
                    ),
                    _param("Last-Event-ID", "header", {"type": "string"}),
                    *auth_params,
                ],
                "responses": {
                    "200": {
                        "description": "the event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_error_responses(400, 401, 403, 404, 503),
                },
            }
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
