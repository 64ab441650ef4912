"""``/openapi.json``: every route (the raw-ASGI ones too), the credentials each accepts in this
server's auth mode, and every status it can answer, each error with the one error body."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from hubbub.api.auth import REFRESH_COOKIE
from hubbub.api.schemas import ErrorBody, MessageOut, SendIn, SendOut
from hubbub.auth.identity import GUEST_COOKIE, SESSION_COOKIE
from hubbub.chat.checks import ROOM_ID_RE

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

ERROR_SCHEMA = "ErrorBody"
ERROR_REF: dict[str, Any] = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}

# What each error status means on this API; every one of them has the one error body.
ERROR_STATUSES: dict[int, str] = {
    400: "Malformed request: JSON that does not parse, is nested deeper than 64 levels or holds "
    "a lone UTF-16 surrogate; a bad cursor; in trust mode a malformed `User-ID`",
    401: "Not authenticated: no, bad, expired or revoked credentials",
    403: "Not allowed: not a member, not an admin, `user_id` naming someone else "
    "(`user_mismatch`), or a cookie-authenticated change from another site (`cross_origin`)",
    404: "Unknown, or private and not visible to the caller",
    409: "Conflict (`idempotency_conflict`, `username_taken`, …)",
    413: "Body too large (JSON: 64 KiB by default; uploads: 25 MiB)",
    415: "Wrong media type: send `application/json`",
    421: "Trust mode: a `Host` that is not the bound address or `localhost` (DNS rebinding)",
    422: "Invalid field: it parsed but is not acceptable (a type, a range, a length, an integer "
    "beyond 2^53, …)",
    429: "Rate limited; `Retry-After` says when to try again",
    503: "Store or broker unavailable, or the server is shutting down; nothing changed",
}

RETRY_AFTER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}

_BODY_METHODS = frozenset({"post", "put", "patch", "delete"})

# Routes anyone may call: no credentials at all.
PUBLIC = frozenset({"/healthz", "/readyz", "/metrics", "/auth/register", "/auth/login"})
# The GETs that open a stream: the only ones a `?ticket=` authenticates.
STREAMS = frozenset(
    {"/chat/events", "/chat/room/{room_id}/events", "/chat/room/{room_id}/poll", "/chat/ws"}
)
# Where `429` can come from besides a body: send limits, failed sign-ins, streams per user.
RATE_LIMITED = frozenset(
    {
        ("post", "/chat/messages"),
        ("post", "/chat/room/{room_id}/files"),
        ("post", "/auth/login"),
        ("post", "/auth/register"),
        *(("get", path) for path in STREAMS),
    }
)


def security_schemes(auth: str, *, metrics_token: bool = False) -> dict[str, Any]:
    """How a caller proves who they are, in this server's auth mode."""
    schemes: dict[str, Any] = {
        "sessionCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": SESSION_COOKIE,
            "description": "The HttpOnly session cookie set by `POST /auth/login`.",
        },
        "refreshCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": REFRESH_COOKIE,
            "description": "The refresh cookie (path `/auth`) set by `POST /auth/login`; "
            "`refresh_token` in the body does the same.",
        },
    }
    if auth == "trust":
        schemes.update(
            {
                "userIdHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "User-ID",
                    "description": "Trust mode (local development): the caller is whoever "
                    "this names (1-64 of letters, digits and `_.@:~-`; else 400 "
                    "`invalid_user_id`), created on first use.",
                },
                "userIdQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "user_id",
                    "description": "Trust mode: the same as `User-ID`, as a query parameter "
                    "(or a `user_id` body field).",
                },
                "guestCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": GUEST_COOKIE,
                    "description": "Trust mode: the guest identity the server sets on a "
                    "request that names nobody.",
                },
            }
        )
    else:
        schemes.update(
            {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from `POST /auth/login` or "
                    "`/auth/refresh` (HS256 with the server's secret, or a key of "
                    "`--jwt-public-key`; `sub` = user id, `exp` required).",
                },
                "ticket": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "ticket",
                    "description": "A one-time ticket from `POST /auth/ticket`: opens one "
                    "stream (`EventSource` and WebSocket cannot send headers), once, within "
                    "its lifetime. Anywhere else it is 401.",
                },
            }
        )
    if metrics_token:
        schemes["metricsToken"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "`--metrics-token`: required by `GET /metrics` when set.",
        }
    return schemes


def operation_security(
    auth: str, method: str, path: str, *, metrics_token: bool = False
) -> list[dict[str, list[str]]]:
    """The credentials an operation accepts (any one entry; `{}`: none needed)."""
    if path == "/metrics" and metrics_token:
        return [{"metricsToken": []}]
    if path in PUBLIC:
        return []
    trust = auth == "trust"
    if path == "/auth/refresh":
        return [{"refreshCookie": []}, {}]  # or refresh_token in the body
    if path == "/auth/logout":
        signed_in: list[dict[str, list[str]]] = [{"sessionCookie": []}]
        if not trust:
            signed_in.insert(0, {"bearerAuth": []})
        return [{"refreshCookie": []}, *signed_in, {}]  # or refresh_token in the body
    if trust:
        # Nobody named: a guest identity is created (and set as a cookie).
        return [
            {"userIdHeader": []},
            {"userIdQuery": []},
            {"sessionCookie": []},
            {"guestCookie": []},
            {},
        ]
    found: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"sessionCookie": []}]
    if method == "get" and path in STREAMS:
        found.append({"ticket": []})
    return found


def error_response(status: int, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or ERROR_STATUSES[status],
        "content": {"application/json": {"schema": dict(ERROR_REF)}},
    }
    if status == 429:
        response["headers"] = dict(RETRY_AFTER)
    return response


def _error_responses(*codes: int) -> dict[str, Any]:
    return {str(c): error_response(c) for c in codes}


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


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _status_object(value: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": [value]}},
    }


# One Server-Sent Event as a client's parser reads it (the shape OpenAPI 3.2 gives the events of
# a `text/event-stream`): `data` is JSON text; no `event` means a chat message.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "description": "absent for a chat message"},
        "data": {"type": "string", "description": "JSON text"},
        "id": {"type": "string", "description": "a cursor to resume from (`Last-Event-ID`)"},
        "retry": {"type": "integer", "description": "reconnection delay, ms"},
    },
}


def _event_stream(description: str = "the event stream") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"text/event-stream": {"schema": SSE_EVENT}},
    }


def raw_paths() -> dict[str, Any]:
    """The raw-ASGI routes (``app.py`` serves them before FastAPI sees the request)."""
    stream_cursor = _param(
        "Last-Event-ID",
        "header",
        {"type": "string"},
        description="sent by browsers on reconnect: the last `id:` received",
    )
    return {
        "/chat/messages": {
            "post": {
                "tags": ["messages"],
                "summary": "Send a message",
                "description": SEND_DESCRIPTION,
                "operationId": "send_message",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(SendIn)}},
                },
                "responses": {
                    "201": _json(_schema(SendOut), "stored"),
                    "200": _json(_schema(SendOut), "repeat of a client_msg_id: the original"),
                    **_error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
                },
            }
        },
        "/chat/events": {
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
                    stream_cursor,
                ],
                "responses": {
                    "200": _event_stream(),
                    **_error_responses(400, 401, 429, 503),
                },
            }
        },
        "/chat/room/{room_id}/poll": {
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
                ],
                "responses": {
                    "200": _json(
                        {"oneOf": [{"type": "array", "items": _schema(MessageOut)}, CHANGES_PAGE]},
                        "messages after `after`, oldest first ([] on timeout); with changes=1, "
                        "{events, next}",
                    ),
                    **_error_responses(400, 401, 403, 404, 422, 429, 503),
                },
            }
        },
        "/chat/ws": {
            "get": {
                "tags": ["streams"],
                "summary": "WebSocket (JSON frames)",
                "description": WS_DESCRIPTION,
                "operationId": "websocket",
                "responses": {
                    "101": {"description": "switching to WebSocket"},
                    "404": error_response(
                        404, "a plain HTTP GET, not a WebSocket handshake: there is nothing here"
                    ),
                },
            }
        },
        "/chat/room/{room_id}/events": {
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
                    stream_cursor,
                ],
                "responses": {
                    "200": _event_stream(),
                    **_error_responses(400, 401, 403, 404, 422, 429, 503),
                },
            }
        },
    }


# Success answers FastAPI cannot infer from the handlers (they return ``Response`` objects).
EXTRA_SUCCESS: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/healthz"): {"200": _json(_status_object("ok"), "the process is up")},
    ("get", "/readyz"): {"200": _json(_status_object("ready"), "the store and broker answer")},
    ("get", "/metrics"): {
        "200": {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    ("post", "/auth/logout"): {"200": _json(_status_object("logged_out"), "the session ended")},
    ("post", "/chat/room/{room_id}/members"): {
        "200": _json({"$ref": "#/components/schemas/InviteOut"}, "already a member")
    },
    ("post", "/chat/messages/{message_id}/reactions"): {
        "200": _json(_schema(MessageOut), "you had already reacted so: the message")
    },
}


def _error_statuses(auth: str, method: str, path: str, op: dict[str, Any]) -> set[int]:
    """Every error an operation can answer, whatever the route's own code says."""
    found = {int(s) for s in op.get("responses", {}) if s.isdigit() and int(s) >= 400}
    if path == "/chat/ws":
        return found
    if path not in ("/healthz", "/metrics"):
        found.add(503)
    if method in _BODY_METHODS:
        # Any body, even to a route that takes none, is checked before the route runs; and a
        # change from another site that carries our cookies is refused.
        found.update({400, 403, 413, 415})
    if auth == "trust":
        found.update({403, 421})
    if path not in PUBLIC:
        found.update({400, 401, 403})  # bad credentials; `user_id` naming someone else
    if "{" in path:
        found.add(404)
    if (method, path) in RATE_LIMITED:
        found.add(429)
    if path == "/metrics":
        found.add(401)  # when --metrics-token is set
    return found


def _describe_errors(auth: str, method: str, path: str, op: dict[str, Any]) -> None:
    responses = op.setdefault("responses", {})
    for status in sorted(_error_statuses(auth, method, path, op)):
        given = responses.get(str(status), {}).get("description")
        generic = given in (None, "error", "Validation Error", "Unprocessable Content")
        responses[str(status)] = error_response(status, None if generic else given)


def build_document(
    app: FastAPI, *, auth: str = "jwt", metrics_token: bool = False
) -> dict[str, Any]:
    """``/openapi.json`` for a server in ``auth`` mode (``jwt`` or ``trust``): every route, the
    credentials each accepts, and every status it can answer — every error with the one error
    body ``{"error": {"code", "message", "details"?}}`` (``api/errors.py``)."""
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    models = components.setdefault("schemas", {})
    for model in (ErrorBody, MessageOut, SendIn, SendOut):
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in model_schema.pop("$defs", {}).items():
            models.setdefault(name, sub)
        models[model.__name__] = model_schema
    # FastAPI's own 422 body is never sent: api/errors.py answers every failure with ErrorBody.
    for name in ("HTTPValidationError", "ValidationError"):
        models.pop(name, None)
    schema["paths"].update(raw_paths())
    room_id = {"type": "string", "pattern": f"^{ROOM_ID_RE.pattern}$"}
    components["securitySchemes"] = security_schemes(auth, metrics_token=metrics_token)
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            for status, response in EXTRA_SUCCESS.get((method, path), {}).items():
                op["responses"][status] = response
            for param in op.get("parameters", []):
                if param["in"] == "path" and param["name"] == "room_id":
                    param["schema"] = {**param["schema"], **room_id}  # else 422 invalid_room_id
            _describe_errors(auth, method, path, op)
            op["security"] = operation_security(auth, method, path, metrics_token=metrics_token)
    schema["paths"] = dict(sorted(schema["paths"].items()))
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        runtime = getattr(app.state, "runtime", None)
        settings = getattr(runtime, "settings", None)
        auth = str(getattr(settings, "auth", "jwt"))
        token = bool(getattr(settings, "metrics_token", None))
        app.openapi_schema = build_document(app, auth=auth, metrics_token=token)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
