"""CORS for the origins the operator lists (``--cors-origins``): a page on one of them may call
every chat and auth route with credentials (cookies, ``Authorization``) and read the answers,
errors included; any other origin gets no CORS header at all, so the browser keeps its
same-origin rule. Those origins are also trusted by the cross-site checks
(``api/guard.py``), since they are the operator's own front ends.

Applied in front of everything (``HubbubApp``), so a preflight never reaches a route and a
refusal (401, 403, 429 …) still carries the headers a script needs to read it. Streams keep
uvicorn's own ``send`` underneath (:class:`CorsSend` keeps ``__self__``), so the SSE fast lane
still finds its transport.
"""

from __future__ import annotations

from hubbub.api.raw import Message, Scope, Send, header

PATHS = ("/chat/", "/auth/", "/api/")
ALLOW_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
DEFAULT_ALLOW_HEADERS = b"Authorization, Content-Type, Last-Event-ID, User-ID"
EXPOSE_HEADERS = b"Retry-After, Content-Disposition, Content-Length"
MAX_AGE = b"600"
_MAX_REQUESTED = 1024


class Cors:
    def __init__(self, origins: frozenset[str]) -> None:
        self._origins = frozenset(o.encode("latin-1") for o in origins)

    @property
    def active(self) -> bool:
        return bool(self._origins)

    def origin_of(self, scope: Scope) -> bytes | None:
        """The request's ``Origin`` when it is allowed and the route is a chat/auth one."""
        path: str = scope.get("path", "")
        if not path.startswith(PATHS):
            return None
        origin = header(scope, b"origin")
        if origin is None or origin.rstrip("/").encode("latin-1") not in self._origins:
            return None
        return origin.encode("latin-1")

    def answer_headers(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", EXPOSE_HEADERS),
            (b"vary", b"Origin"),
        ]

    def is_preflight(self, scope: Scope) -> bool:
        return scope.get("method") == "OPTIONS" and (
            header(scope, b"access-control-request-method") is not None
        )

    def preflight_headers(self, scope: Scope, origin: bytes) -> list[tuple[bytes, bytes]]:
        requested = header(scope, b"access-control-request-headers")
        allow = (
            requested.encode("latin-1")
            if requested and len(requested) <= _MAX_REQUESTED and requested.isascii()
            else DEFAULT_ALLOW_HEADERS
        )
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-allow-methods", ALLOW_METHODS),
            (b"access-control-allow-headers", allow),
            (b"access-control-max-age", MAX_AGE),
            (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
            (b"content-length", b"0"),
        ]


async def send_preflight(send: Send, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


class CorsSend:
    """``send`` with the CORS headers added to the response head. ``__self__`` is the wrapped
    bound method's (uvicorn's cycle), which the stream transports take their socket from."""

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
        self._send = send
        self._headers = headers
        self.__self__ = getattr(send, "__self__", None)

    async def __call__(self, message: Message) -> None:
        if message.get("type") == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *self._headers]}
        await self._send(message)
