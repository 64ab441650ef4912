"""The ASGI application: a tiny dispatcher in front of FastAPI.

The hot routes (``api/routes.py``: sending, the streams, the WebSocket) are matched first and
served as raw ASGI, with uvicorn's own ``send`` (the SSE fast lane needs it unwrapped);
everything else goes to FastAPI, which also documents the hot routes (``api/openapi.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from hubbub import __version__
from hubbub.api import activity, auth, errors, files, messages, ops, rooms, search, server
from hubbub.api import docs as api_docs
from hubbub.api import openapi as openapi_docs
from hubbub.api.cors import Cors, CorsSend, send_preflight
from hubbub.api.guard import RequestGuard
from hubbub.api.raw import (
    Receive,
    Reply,
    Scope,
    Send,
    check_json_body,
    check_json_type,
    error_reply,
    header,
    read_body,
    send_error,
)
from hubbub.api.routes import WEBSOCKET, Dispatch, streams_body
from hubbub.api.send import SendRoute
from hubbub.config import Settings
from hubbub.errors import HubbubError, NotFound, TooLarge, Unavailable
from hubbub.http_metrics import ROUTE_KEY, HttpMetrics
from hubbub.logs import REQUEST_ID, SCOPE_KEY, request_id_of
from hubbub.runtime import Runtime
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


class HubbubApp:
    """Route the hot paths to raw handlers, the rest to FastAPI (with a body-size limit)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime: Runtime | None = None
        self.raw: Dispatch | None = None  # the raw routes, bound while the runtime runs
        self.send_route: SendRoute | None = None  # the same route, for the fast lane
        self.http_metrics: HttpMetrics | None = None  # per-route series, while the runtime runs
        self.guard = RequestGuard(settings)
        self.cors = Cors(settings.cors_allowlist())
        self.api = build_fastapi(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":  # the HTTP protocol worked the id out (logs.py)
            REQUEST_ID.set(scope.get(SCOPE_KEY) or request_id_of(scope["headers"]).decode())
        if scope["type"] == "http" and self.cors.active:
            origin = self.cors.origin_of(scope)
            if origin is not None:
                if self.cors.is_preflight(scope):
                    await send_preflight(send, self.cors.preflight_headers(scope, origin))
                    return
                send = CorsSend(send, self.cors.answer_headers(origin))
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
        raw = self.raw
        if scope["type"] == "websocket":
            found = raw.match(WEBSOCKET, scope["path"]) if raw is not None else None
            if found is not None:
                handler, params = found
                scope[ROUTE_KEY] = raw.templates[handler]  # type: ignore[union-attr]
                await handler(scope, receive, send, params)
            else:
                await receive()
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] == "http" and raw is not None:
            path: str = scope["path"]
            method: str = scope["method"]
            found = raw.match(method, path)
            if found is not None:
                handler, params = found
                scope[ROUTE_KEY] = raw.templates[handler]
                await handler(scope, receive, send, params)
                return
            if raw.refuses(method, path):
                await send_error(send, NotFound("no such route", code="not_found"))
                return
            if method in _BODY_METHODS and not streams_body(method, path):
                try:
                    receive = await self._buffered_json(scope, receive)
                except HubbubError as exc:
                    await send_error(send, exc)
                    return
        await self.api(scope, receive, send)

    async def answer_send(self, scope: Scope, body: bytes, too_large: bool) -> Reply:
        """``POST /chat/messages`` from the HTTP protocol's fast lane (``http_protocol.py``):
        the same checks as :meth:`__call__` gives it, without ASGI."""
        reply = await self._answer_send(scope, body, too_large)
        if self.cors.active:
            origin = self.cors.origin_of(scope)
            if origin is not None:
                cors = self.cors.answer_headers(origin)
                reply = reply._replace(headers=[*(reply.headers or ()), *cors])
        return reply

    async def _answer_send(self, scope: Scope, body: bytes, too_large: bool) -> Reply:
        route = self.send_route
        if route is None:
            return error_reply(Unavailable("the server is starting or stopping"))
        try:
            self.guard.check(scope)
        except HubbubError as exc:
            return error_reply(exc)
        return await route.answer(scope, body, too_large=too_large)

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
        holder.raw = Dispatch(rt)
        holder.send_route = SendRoute.of(rt)
        holder.http_metrics = HttpMetrics(rt.metrics.registry)
        try:
            yield
        finally:
            holder.send_route = None
            holder.http_metrics = None
            holder.raw = None
            holder.runtime = None
            await rt.stop()

    app = FastAPI(
        title="Hubbub",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's /docs and /redoc load scripts from a CDN: api/docs.py instead
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    errors.install(app)
    for router in (auth.router, rooms.router, messages.router, activity.router, ops.router):
        app.include_router(router)
    app.include_router(search.router)
    app.include_router(files.router)
    app.include_router(server.router)
    openapi_docs.install(app)
    api_docs.install(app)  # GET /docs: Swagger UI, self-hosted, with a CSP
    install_web_app(app)  # the browser app: GET / and /static/*
    return app


def create_app(settings: Settings | None = None) -> HubbubApp:
    return HubbubApp(settings or Settings())
