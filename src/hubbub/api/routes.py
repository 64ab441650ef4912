"""The raw-ASGI routes, in one table. ``HubbubApp`` serves them before FastAPI sees the request
(the hot paths skip its cost, and the SSE fast lane needs uvicorn's own ``send``);
``api/openapi.py`` documents them from the same entries, so what is served and what is
documented cannot part.

A path template's ``{name}`` is one non-empty segment without ``/``; templates become regexes
once, at import. Dispatch looks exact paths up in a dict and tries the templated ones in order.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from hubbub.api.openapi_text import (
    ALL_DESCRIPTION,
    NOTICES_DESCRIPTION,
    POLL_DESCRIPTION,
    SEND_DESCRIPTION,
    STREAM_DESCRIPTION,
    WS_DESCRIPTION,
)
from hubbub.api.raw import Receive, Scope, Send
from hubbub.api.send import SendRoute
from hubbub.models import Message
from hubbub.transports.longpoll import DEFAULT_TIMEOUT, MAX_LIMIT, MAX_TIMEOUT, poll
from hubbub.transports.notices import notice_stream
from hubbub.transports.seed_ws import DESCRIPTION as SEED_WS_DESCRIPTION
from hubbub.transports.seed_ws import seed_chat_endpoint
from hubbub.transports.sse import room_stream
from hubbub.transports.websocket import websocket_endpoint
from hubbub.wire import ChangesPage, SendBody, SendOut

if TYPE_CHECKING:
    from hubbub.runtime import Runtime

RawHandler = Callable[[Scope, Receive, Send, dict[str, str]], Awaitable[None]]
"""An ASGI app that is also given the path's parameters."""

WEBSOCKET = "WEBSOCKET"  # the method of a route served to ``scope["type"] == "websocket"``


class Access(StrEnum):
    """Which credentials a route accepts (``api/openapi.operation_security``)."""

    PUBLIC = "public"  # none needed
    STREAM = "stream"  # also a one-time `?ticket=`: EventSource and WebSocket send no headers
    REGULAR = "regular"


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: str  # "path", "query" or "header"
    schema: Mapping[str, Any]
    required: bool = False
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A success answer: a wire type (documented by its JSON schema) or, for what is not JSON,
    a media type and a literal schema."""

    description: str
    model: Any = None
    media_type: str = "application/json"
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class PathPattern:
    template: str
    regex: re.Pattern[str] | None  # None: an exact path

    def match(self, path: str) -> dict[str, str] | None:
        if self.regex is None:
            return {} if path == self.template else None
        found = self.regex.fullmatch(path)
        return found.groupdict() if found else None

    def resembles(self, path: str) -> bool:
        """The template's text around its parameters is there (with anything between)."""
        return path.startswith(self.template.split("{", 1)[0]) and path.endswith(
            self.template.rsplit("}", 1)[-1]
        )


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def compile_path(template: str) -> PathPattern:
    if "{" not in template:
        return PathPattern(template, None)
    parts: list[str] = []
    end = 0
    for found in _PARAM.finditer(template):
        parts.append(re.escape(template[end : found.start()]))
        parts.append(f"(?P<{found.group(1)}>[^/]+)")
        end = found.end()
    parts.append(re.escape(template[end:]))
    return PathPattern(template, re.compile("".join(parts)))


@dataclass(frozen=True, slots=True)
class RawRoute:
    method: str  # an HTTP method, or WEBSOCKET
    path: str
    build: Callable[[Runtime], RawHandler]
    operation_id: str
    summary: str
    description: str
    tags: tuple[str, ...]
    access: Access
    # Can answer 429: a send limit, or the cap on one user's streams.
    rate_limited: bool
    replies: Mapping[int, Reply]
    # Each error status it answers, with what it means here (None: the usual meaning).
    errors: Mapping[int, str | None]
    parameters: tuple[Param, ...] = ()
    body: Any = None  # the wire type of a JSON request body
    # A GET that resembles the path but has no single segment where a parameter goes is
    # answered 404 here rather than by FastAPI (``/chat/room//events``, ``…/a/b/events``).
    refuse_malformed: bool = False
    pattern: PathPattern = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", compile_path(self.path))


# The wiring: what each route runs, given the runtime ----------------------------------------


def _send_message(rt: Runtime) -> RawHandler:
    route = SendRoute.of(rt)

    async def handle(scope: Scope, receive: Receive, send: Send, _: dict[str, str]) -> None:
        await route(scope, receive, send)

    return handle


def _all_events(rt: Runtime) -> RawHandler:
    async def handle(scope: Scope, receive: Receive, send: Send, _: dict[str, str]) -> None:
        await rt.all_streams.serve(scope, receive, send)

    return handle


def _room_events(rt: Runtime) -> RawHandler:
    async def handle(scope: Scope, receive: Receive, send: Send, p: dict[str, str]) -> None:
        await room_stream(rt.streams, scope, receive, send, p["room_id"])

    return handle


def _poll_room(rt: Runtime) -> RawHandler:
    async def handle(scope: Scope, receive: Receive, send: Send, p: dict[str, str]) -> None:
        await poll(rt.streams, scope, receive, send, p["room_id"])

    return handle


def _api_sse(rt: Runtime) -> RawHandler:
    async def handle(scope: Scope, receive: Receive, send: Send, _: dict[str, str]) -> None:
        await notice_stream(rt.streams, scope, receive, send)

    return handle


def _websocket(rt: Runtime) -> RawHandler:
    async def handle(scope: Scope, receive: Receive, send: Send, _: dict[str, str]) -> None:
        await websocket_endpoint(rt.streams, scope, receive, send)

    return handle


def _seed_chat(rt: Runtime) -> RawHandler:
    async def handle(scope: Scope, receive: Receive, send: Send, _: dict[str, str]) -> None:
        await seed_chat_endpoint(rt.streams, scope, receive, send)

    return handle


# The table -------------------------------------------------------------------------------

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
_EVENT_STREAM = Reply("the event stream", media_type="text/event-stream", schema=SSE_EVENT)
_ROOM_ID = Param("room_id", "path", {"type": "string"}, required=True)
_LAST_EVENT_ID = Param(
    "Last-Event-ID",
    "header",
    {"type": "string"},
    description="sent by browsers on reconnect: the last `id:` received",
)
_STREAM_ERRORS: dict[int, str | None] = dict.fromkeys((400, 401, 403, 404, 422, 429, 503))

ROUTES: tuple[RawRoute, ...] = (
    RawRoute(
        "POST",
        "/chat/messages",
        _send_message,
        operation_id="send_message",
        summary="Send a message",
        description=SEND_DESCRIPTION,
        tags=("messages",),
        access=Access.REGULAR,
        rate_limited=True,
        body=SendBody,
        replies={
            201: Reply("stored", SendOut),
            200: Reply("repeat of a client_msg_id: the original", SendOut),
        },
        errors=dict.fromkeys((400, 401, 403, 404, 409, 413, 415, 422, 429, 503)),
    ),
    RawRoute(
        "GET",
        "/chat/events",
        _all_events,
        operation_id="all_events",
        summary="SSE stream of all my rooms",
        description=ALL_DESCRIPTION,
        tags=("streams",),
        access=Access.STREAM,
        rate_limited=True,
        parameters=(
            Param(
                "last_event_id",
                "query",
                {"type": "string"},
                description="a cursor from an id: line",
            ),
            _LAST_EVENT_ID,
        ),
        replies={200: _EVENT_STREAM},
        errors=dict.fromkeys((400, 401, 429, 503)),
    ),
    RawRoute(
        "GET",
        "/chat/room/{room_id}/poll",
        _poll_room,
        operation_id="poll_room",
        summary="Long-poll one room",
        description=POLL_DESCRIPTION,
        tags=("streams",),
        access=Access.STREAM,
        rate_limited=True,
        parameters=(
            _ROOM_ID,
            Param(
                "after",
                "query",
                {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]},
                description="the newest seq you have (with changes=1: any id of this "
                "room, e.g. r42); default: the room's head",
            ),
            Param(
                "changes",
                "query",
                {"type": "string", "enum": ["0", "1"]},
                description="1: every stored change, as {events, next}",
            ),
            Param(
                "timeout",
                "query",
                {
                    "type": "number",
                    "minimum": 0,
                    "maximum": MAX_TIMEOUT,
                    "default": DEFAULT_TIMEOUT,
                },
            ),
            Param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
            ),
        ),
        replies={
            200: Reply(
                "messages after `after`, oldest first ([] on timeout); with changes=1, "
                "{events, next}",
                list[Message] | ChangesPage,
            )
        },
        errors=_STREAM_ERRORS,
    ),
    RawRoute(
        WEBSOCKET,
        "/chat/ws",
        _websocket,
        operation_id="websocket",
        summary="WebSocket (JSON frames)",
        description=WS_DESCRIPTION,
        tags=("streams",),
        access=Access.STREAM,
        rate_limited=True,
        replies={101: Reply("switching to WebSocket")},
        errors={404: "a plain HTTP GET, not a WebSocket handshake: there is nothing here"},
    ),
    RawRoute(
        WEBSOCKET,
        "/ws/chat",
        _seed_chat,
        operation_id="seed_chat_websocket",
        summary="WebSocket of one room's messages (seed 000)",
        description=SEED_WS_DESCRIPTION,
        tags=("streams",),
        access=Access.STREAM,
        rate_limited=True,
        parameters=(
            Param(
                "room",
                "query",
                {"type": "string", "default": "general"},
                description="the room to follow and send to",
            ),
        ),
        replies={101: Reply("switching to WebSocket")},
        errors={404: "a plain HTTP GET, not a WebSocket handshake: there is nothing here"},
    ),
    RawRoute(
        "GET",
        "/chat/room/{room_id}/events",
        _room_events,
        operation_id="room_events",
        summary="SSE stream of one room",
        description=STREAM_DESCRIPTION,
        tags=("streams",),
        access=Access.STREAM,
        rate_limited=True,
        parameters=(
            _ROOM_ID,
            Param(
                "user_id",
                "query",
                {"type": "string"},
                description="seed; in jwt mode must be the caller",
            ),
            Param(
                "last_event_id",
                "query",
                {"type": "string"},
                description="any id this stream sent: a seq, or r<number>",
            ),
            _LAST_EVENT_ID,
        ),
        replies={200: _EVENT_STREAM},
        errors=_STREAM_ERRORS,
        refuse_malformed=True,
    ),
    RawRoute(
        "GET",
        "/api/sse",
        _api_sse,
        operation_id="notification_stream",
        summary="SSE stream of my notifications (seed 000)",
        description=NOTICES_DESCRIPTION,
        tags=("streams",),
        access=Access.STREAM,
        rate_limited=True,
        parameters=(
            Param(
                "last_event_id",
                "query",
                {"type": "string"},
                description="an id this stream sent (a number)",
            ),
            _LAST_EVENT_ID,
        ),
        replies={200: _EVENT_STREAM},
        errors=dict.fromkeys((400, 401, 429, 503)),
    ),
)

# Routes FastAPI serves whose request body it must see unread: an upload streams its multipart
# body to disk under its own size limit (``api/files.py``), every other body is buffered first.
STREAMED_BODIES: tuple[tuple[str, PathPattern], ...] = (
    ("POST", compile_path("/chat/room/{room_id}/files")),
)


def streams_body(method: str, path: str) -> bool:
    return any(m == method and p.match(path) is not None for m, p in STREAMED_BODIES)


class Dispatch:
    """The table bound to a running server: the handlers built once, exact paths in a dict."""

    __slots__ = ("_exact", "_refused", "_templated", "templates")

    def __init__(self, rt: Runtime, routes: tuple[RawRoute, ...] = ROUTES) -> None:
        self._exact: dict[tuple[str, str], RawHandler] = {}
        self._templated: list[tuple[str, re.Pattern[str], RawHandler]] = []
        self._refused: list[tuple[str, PathPattern]] = []
        self.templates: dict[RawHandler, str] = {}  # each handler's path template (metrics)
        for route in routes:
            handler = route.build(rt)
            self.templates[handler] = route.path
            regex = route.pattern.regex
            if regex is None:
                self._exact[route.method, route.path] = handler
            else:
                self._templated.append((route.method, regex, handler))
            if route.refuse_malformed:
                self._refused.append((route.method, route.pattern))

    def match(self, method: str, path: str) -> tuple[RawHandler, dict[str, str]] | None:
        handler = self._exact.get((method, path))
        if handler is not None:
            return handler, {}
        for m, regex, handler in self._templated:
            if m == method:
                found = regex.fullmatch(path)
                if found is not None:
                    return handler, found.groupdict()
        return None

    def refuses(self, method: str, path: str) -> bool:
        """A malformed path of a ``refuse_malformed`` route: 404 without asking FastAPI."""
        return any(m == method and p.resembles(path) for m, p in self._refused)
