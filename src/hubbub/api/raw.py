"""Small raw-ASGI helpers for the hot routes (sending, streaming), which skip FastAPI's cost."""

from __future__ import annotations

import re
from array import array
from collections.abc import Awaitable, Callable, MutableMapping
from itertools import accumulate
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl

import msgspec
from starlette.requests import cookie_parser

from hubbub.auth.identity import Credentials
from hubbub.errors import BadRequest, HubbubError, Invalid, TooLarge, UnsupportedMediaType

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


# Media type --------------------------------------------------------------------------------


def _is_json_media_type(value: str) -> bool:
    ctype = value.split(";", 1)[0].strip().lower()
    return ctype == "application/json" or ctype.endswith("+json")


def json_media_type(scope: Scope) -> bytes | None:
    """The JSON media type among the request's ``Content-Type`` headers, if any: a body is JSON
    when any of them says so (case-insensitive, with parameters). ``ab -p file -H
    "Content-Type: application/json"`` sends its own ``Content-type: text/plain`` first."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            for part in bytes(value).split(b","):
                if _is_json_media_type(part.decode("latin-1")):
                    return part.strip()
    return None


def check_json_type(scope: Scope) -> bytes:
    """The request's JSON media type; 415 when none of its Content-Type headers is JSON."""
    ctype = json_media_type(scope)
    if ctype is None:
        raise UnsupportedMediaType(
            "send JSON (Content-Type: application/json)", code="unsupported_media_type"
        )
    return ctype


# JSON input limits -------------------------------------------------------------------------

MAX_JSON_DEPTH = 64

# A JSON string, possessively (linear time): up to its closing quote, or to the end when it is
# unterminated (a parser fails at that string without going any deeper).
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def json_depth(data: bytes | str) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do not
    count). For a text that is not JSON: at least the depth any parser reaches before it fails,
    so checking this first bounds every parser's recursion."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    steps = array("b", brackets.translate(_BRACKET_STEP))
    return max(0, max(accumulate(steps), default=0))


def json_too_deep(data: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """``json_depth(data) > limit``, answered at once for the usual text with few brackets."""
    if isinstance(data, str):
        if data.count("[") + data.count("{") <= limit:
            return False
    elif data.count(b"[") + data.count(b"{") <= limit:
        return False
    return json_depth(data) > limit


def check_json_depth(data: bytes | str) -> None:
    """400 ``json_too_deep`` for JSON nested deeper than 64 levels — anywhere, also inside a
    field the route does not know — before any parser recurses into it."""
    if json_too_deep(data):
        raise BadRequest(
            f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels", code="json_too_deep"
        )


def json_error(data: bytes | str, exc: BaseException) -> str:
    """Why the parser refused ``data``, in words a client can act on."""
    if isinstance(exc, UnicodeError):
        return "it is not UTF-8 text"
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _SURROGATE_ESCAPE.search(raw) and ("surrogate" in str(exc) or "truncated" in str(exc)):
        return "it holds a lone UTF-16 surrogate escape (such as \\ud800), which is not text"
    return str(exc)


T = TypeVar("T")


def decode_json(
    decoder: msgspec.json.Decoder[T], raw: bytes | str, *, what: str, invalid_code: str
) -> T:
    """One typed JSON value, or a 4xx :class:`HubbubError`: 400 ``malformed_json`` when it is
    not JSON (also nested deeper than 64 levels, or holding a lone UTF-16 surrogate), 422
    ``invalid_code`` when it is JSON of the wrong shape (a field's type, a number's range)."""
    check_json_depth(raw)
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise Invalid(f"invalid {what}: {exc}", code=invalid_code) from None
    except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
        raise BadRequest(
            f"the {what} is not valid JSON: {json_error(raw, exc)}", code="malformed_json"
        ) from None


def check_json_body(body: bytes) -> None:
    """A JSON body as the FastAPI routes get it: not too deep, UTF-8, valid JSON, no lone UTF-16
    surrogate (``"\\ud800"``, which Python's own parser would let through). 400 otherwise."""
    check_json_depth(body)
    try:
        msgspec.json.decode(body.removeprefix(b"\xef\xbb\xbf"))
    except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
        raise BadRequest(
            f"the body is not valid JSON: {json_error(body, exc)}", code="malformed_json"
        ) from None


_JSON_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"?|[\[\]{}]', re.DOTALL)
_KEY_COLON = re.compile(rb"[ \t\r\n]*:[ \t\r\n]*")
_JSON_SCALAR = re.compile(
    rb'"(?:[^"\\]++|\\.)*+"|-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null'
)


def lenient_field(data: bytes | str, name: str) -> Any:
    """The value of the top-level field ``name`` of a JSON object text that could not be
    decoded as a whole (malformed further on, nested too deeply elsewhere): found by scanning,
    never by recursion. ``None`` when there is none, or it cannot be told."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if not raw.lstrip(b" \t\r\n").startswith(b"{") or name.encode() not in raw:
        return None
    depth = 0
    value_start = -1  # where the wanted value (an object or array) began
    for m in _JSON_TOKEN.finditer(raw):
        c = raw[m.start()]
        if c in b"[{":
            depth += 1
        elif c in b"]}":
            depth -= 1
            if value_start >= 0 and depth == 1:
                return _decode_value(raw[value_start : m.end()])
            if depth <= 0:
                return None
        elif depth == 1 and value_start < 0:
            colon = _KEY_COLON.match(raw, m.end())
            if colon is None or _decode_value(m.group()) != name:
                continue
            start = colon.end()
            if raw[start : start + 1] in (b"[", b"{"):
                value_start = start
                continue
            scalar = _JSON_SCALAR.match(raw, start)
            return _decode_value(scalar.group()) if scalar else None
    return None


def _decode_value(raw: bytes) -> Any:
    if json_too_deep(raw):
        return None
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeError, RecursionError):
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


class Reply(NamedTuple):
    """A whole JSON answer, ready for either way of writing it (ASGI ``send`` or the HTTP
    protocol's fast lane, ``http_protocol.py``)."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] | None = None


def error_reply(error: HubbubError) -> Reply:
    from hubbub.encoding import to_json

    extra = []
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        extra.append((b"retry-after", str(retry_after).encode()))
    return Reply(error.status, to_json(error.body()), extra)


async def send_reply(send: Send, reply: Reply) -> None:
    await send_json(send, reply.status, reply.body, reply.headers)


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
    await send_reply(send, error_reply(error))
