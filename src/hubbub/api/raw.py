"""Small raw-ASGI helpers for the hot routes (sending, streaming), which skip FastAPI's cost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import cookie_parser

from hubbub.auth.identity import Credentials
from hubbub.errors import HubbubError, TooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = b"application/json; charset=utf-8"


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def query(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))


def credentials(
    scope: Scope, params: dict[str, str], body_user_id: str | None = None
) -> Credentials:
    cookie = header(scope, b"cookie")
    return Credentials(
        authorization=header(scope, b"authorization"),
        cookies=cookie_parser(cookie) if cookie else {},
        ticket=params.get("ticket") or None,
        header_user_id=header(scope, b"user-id") or None,
        query_user_id=params.get("user_id") or None,
        body_user_id=body_user_id,
        secure=scope.get("scheme") == "https",
    )


async def read_body(receive: Receive, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is larger than {limit} bytes", code="body_too_large")
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", JSON_TYPE), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: HubbubError) -> None:
    from hubbub.encoding import to_json

    extra = []
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        extra.append((b"retry-after", str(retry_after).encode()))
    await send_json(send, error.status, to_json(error.body()), extra)
