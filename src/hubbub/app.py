"""The ASGI application: a tiny dispatcher in front of FastAPI.

The hot routes (``POST /chat/messages`` and the SSE streams) are matched first and served as
raw ASGI, with uvicorn's own ``send`` (the SSE fast lane needs it unwrapped); everything else
goes to FastAPI, which also documents the hot routes (``api/openapi.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from hubbub import __version__
from hubbub.api import activity, auth, errors, files, messages, ops, rooms, search
from hubbub.api import openapi as openapi_docs
from hubbub.api.guard import RequestGuard
from hubbub.api.raw import (
    Receive,
    Scope,
    Send,
    check_json_body,
    check_json_type,
    header,
    read_body,
    send_error,
)
from hubbub.api.send import post_message
from hubbub.config import Settings
from hubbub.errors import HubbubError, NotFound, TooLarge
from hubbub.runtime import Runtime
from hubbub.transports.longpoll import poll
from hubbub.transports.sse import room_stream
from hubbub.transports.websocket import websocket_endpoint
from hubbub.web import install as install_web_app

DESCRIPTION = """\
Hubbub is a real-time chat server: receive over Server-Sent Events, send with HTTP POST,
durable history, resume after reconnect with no gap and no duplicate.

Errors are always `{"error": {"code", "message", "details"?}}`. Identity: `Authorization:
Bearer <access token>`, the HttpOnly session cookie set by `/auth/login`, or `?ticket=` for
`EventSource`. In `trust` mode (local development) the `User-ID` header or `user_id` names the
caller.
"""


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _is_upload(method: str, path: str) -> bool:
    """``POST /chat/room/{room_id}/files``: multipart, streamed by its route (``api/files.py``),
    with its own size limit — the one body that is not buffered as JSON."""
    if method != "POST" or not path.startswith("/chat/room/") or not path.endswith("/files"):
        return False
    room_id = path[len("/chat/room/") : -len("/files")]
    return bool(room_id) and "/" not in room_id


class HubbubApp:
    """Route the hot paths to raw handlers, the rest to FastAPI (with a body-size limit)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime: Runtime | None = None
        self.guard = RequestGuard(settings)
        self.api = build_fastapi(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            try:
                self.guard.check(scope)
            except HubbubError as exc:
                if scope["type"] == "websocket":
                    await receive()
                    await send({"type": "websocket.close", "code": 1008})
                else:
                    await send_error(send, exc)
                return
        if scope["type"] == "websocket":
            if self.runtime is not None and scope["path"] == "/chat/ws":
                await websocket_endpoint(self.runtime.streams, scope, receive, send)
            else:
                await receive()
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] == "http" and self.runtime is not None:
            path: str = scope["path"]
            method: str = scope["method"]
            if path == "/chat/messages" and method == "POST":
                await post_message(self.runtime, scope, receive, send)
                return
            if path == "/chat/events" and method == "GET":
                await self.runtime.all_streams.serve(scope, receive, send)
                return
            if path.startswith("/chat/room/") and path.endswith("/poll") and method == "GET":
                room_id = path[len("/chat/room/") : -len("/poll")]
                if room_id and "/" not in room_id:
                    await poll(self.runtime.streams, scope, receive, send, room_id)
                    return
            if path.startswith("/chat/room/") and path.endswith("/events"):
                room_id = path[len("/chat/room/") : -len("/events")]
                if method != "GET":
                    pass
                elif "/" in room_id or not room_id:
                    await send_error(send, NotFound("no such route", code="not_found"))
                    return
                else:
                    await room_stream(self.runtime.streams, scope, receive, send, room_id)
                    return
            if method in _BODY_METHODS and not _is_upload(method, path):
                try:
                    receive = await self._buffered_json(scope, receive)
                except HubbubError as exc:
                    await send_error(send, exc)
                    return
        await self.api(scope, receive, send)

    async def _buffered_json(self, scope: Scope, receive: Receive) -> Receive:
        """Read a JSON body up front: the size limit holds for chunked bodies too (413, not a
        parse error), a body that is not JSON is refused with 415, and malformed JSON (nested
        deeper than 64 levels, a lone UTF-16 surrogate, not UTF-8) with 400, before any route
        runs. A body is JSON when any of its Content-Type headers says so; the route then sees
        that one header (``ab -p`` sends ``Content-type: text/plain`` before the user's)."""
        limit = self.settings.max_body_bytes
        length = header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise TooLarge(f"the request body is larger than {limit} bytes", code="body_too_large")
        body = await read_body(receive, limit)
        if body:
            ctype = check_json_type(scope)
            check_json_body(body)
            scope["headers"] = [
                *((k, v) for k, v in scope["headers"] if k != b"content-type"),
                (b"content-type", ctype),
            ]
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())

        return replay


def build_fastapi(holder: HubbubApp) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = Runtime(holder.settings)
        await rt.start()
        app.state.runtime = rt
        holder.runtime = rt
        try:
            yield
        finally:
            holder.runtime = None
            await rt.stop()

    app = FastAPI(title="Hubbub", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    errors.install(app)
    for router in (auth.router, rooms.router, messages.router, activity.router, ops.router):
        app.include_router(router)
    app.include_router(search.router)
    app.include_router(files.router)
    openapi_docs.install(app)
    install_web_app(app)  # the browser app: GET / and /static/*
    return app


def create_app(settings: Settings | None = None) -> HubbubApp:
    return HubbubApp(settings or Settings())
