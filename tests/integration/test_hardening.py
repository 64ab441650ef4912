"""Hostile input on every route and on the WebSocket (API.md "Limits and abuse").

Malformed input of any kind — JSON nested deeper than 64 levels (also inside a field the route
does not know), lone UTF-16 surrogates, numbers beyond 2^53 where an integer is expected, wrong
types, NUL bytes, overlong strings — is a 4xx in the documented error shape on every route,
and an ``error`` frame (with the frame's ``ref``) on the WebSocket; never a 5xx, never a dropped
connection. The routes come from ``/openapi.json``, so a new route is fuzzed without anyone
remembering to add it here.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support import Server, assert_error, client, say, user

pytestmark = pytest.mark.timeout(120)

USER = "fuzzer"
ROOM = "fuzz-room"
BIG = 2**63  # beyond 2^53 and beyond int64
ERROR_KEYS = {"code", "message", "details"}


def deep(levels: int, inner: str = "1") -> str:
    """JSON arrays and objects nested ``levels`` deep (arrays only past 1000: compact)."""
    half = levels // 2 if levels <= 1000 else 0
    rest = levels - half
    return '{"a":' * half + "[" * rest + inner + "]" * rest + "}" * half


@dataclass
class Case:
    """One hostile request and what it must get: never a 5xx, errors in the documented shape;
    ``expect`` narrows the acceptable statuses when the contract says which."""

    label: str
    method: str
    path: str
    body: bytes | None = None
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    expect: set[int] | None = None
    code: str | None = None


# Query values: numbers beyond 2^53 and int64, negative, not numbers, NUL, bytes that are not
# UTF-8 (an encoded surrogate), overlong, brackets. Already percent-encoded.
QUERY_VALUES = [
    str(BIG),
    str(-BIG - 1),
    str(2**53 + 1),
    "1" + "0" * 400,
    "-1",
    "1e400",
    "NaN",
    "inf",
    "0x10",
    "1.5",
    "abc",
    "",
    "%00",
    "a%00b",
    "%ED%A0%80",
    "%FF%FE",
    "x" * 6000,
    "%5B" * 200,
    "%22%5C",
]
# Integers by contract: these must be refused (not clamped into a 200) when beyond 2^63.
INTEGER_PARAMS = {"after", "before", "limit", "seq", "after_seq", "last_event_id"}

# Path segments: NUL, an encoded surrogate, overlong, a big number, traversal, brackets.
PATH_VALUES = [
    "%00",
    "a%00b",
    "%ED%A0%80",
    "%FF",
    "x" * 3000,
    str(BIG),
    "..%2F..%2Fetc",
    "%5B%7B%22",
    "%F0%9F%91%8D",
]

# Values for a JSON body field: what a client can get wrong. Raw JSON text.
FIELD_VALUES: list[tuple[str, str]] = [
    ("deep", deep(65)),
    ("deeper", deep(3000)),
    ("surrogate", '"\\ud800"'),
    ("low surrogate", '"x\\udc00y"'),
    ("surrogate pair cut", '"\\ud83d"'),
    ("big", str(BIG)),
    ("bigger", "1" + "0" * 300),
    ("2^53+1", str(2**53 + 1)),
    ("negative", "-1"),
    ("huge float", "1e400"),
    ("float", "12.5"),
    ("true", "true"),
    ("null", "null"),
    ("list", '["a", 1]'),
    ("object", '{"a": "b"}'),
    ("NUL", '"a\\u0000b"'),
    ("control", '"\\u0007\\u001b[31m"'),
    ("bidi", '"\\u202eevil"'),
    ("overlong", json.dumps("x" * 60_000)),
    ("empty", '""'),
    ("spaces", '"   "'),
]

# Whole bodies.
BODIES: list[tuple[str, bytes, set[int] | None, str | None]] = [
    ("deep body", deep(65).encode(), {400}, "json_too_deep"),
    ("very deep body", ("[" * 30_000 + "]" * 30_000).encode(), {400}, "json_too_deep"),
    ("unclosed deep body", b"[" * 60_000, {400}, None),
    ("surrogate string", b'"\\ud800"', {400, 422}, None),
    ("encoded surrogate", b'{"message": "\xed\xa0\x80"}', {400, 422}, None),
    ("not UTF-8", b'{"message": "\xff\xfe"}', {400, 422}, None),
    ("array", b"[]", None, None),
    ("string", b'"x"', None, None),
    ("null", b"null", None, None),
    ("number", str(BIG).encode(), None, None),
    ("truncated", b'{"room_id": "r", "message": ', {400}, "malformed_json"),
    ("garbage", b"\x00\x01\x02 not json", {400}, "malformed_json"),
    ("NaN", b'{"a": NaN}', {400, 422}, None),
    ("BOM", b'\xef\xbb\xbf{"a": 1}', None, None),
    ("too large", b'{"a": "' + b"x" * 70_000 + b'"}', {413}, None),
]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        target: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return resolve(spec, target)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            if options:
                return resolve(spec, options[0])
    return schema


def sample(schema: dict[str, Any], name: str) -> Any:
    """A plausible value for a field, so the other fields' hostile values reach validation."""
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "integer":
        return max(int(schema.get("minimum", 0)), 1)
    if kind == "number":
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return {
        "room_id": ROOM,
        "user_id": USER,
        "username": "fuzzuser",
        "password": "correct horse battery",
        "reaction": "👍",
        "visibility": "public",
        "status": "online",
    }.get(name, "fuzz")


def json_body_fields(
    spec: dict[str, Any], op: dict[str, Any]
) -> dict[str, tuple[dict[str, Any], bool]] | None:
    """Each field of a JSON body: its schema, and whether it is an integer (and only that)."""
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    schema = resolve(spec, content["application/json"].get("schema", {}))
    fields = {}
    for name, raw in schema.get("properties", {}).items():
        kinds = {s.get("type") for s in raw.get("anyOf", [raw])} - {"null"}
        fields[name] = (resolve(spec, raw), kinds == {"integer"})
    return fields


def route_cases(spec: dict[str, Any], ids: dict[str, str]) -> Iterator[Case]:
    for template, ops in spec["paths"].items():
        for method, op in ops.items():
            method = method.upper()
            if template == "/chat/ws":
                continue  # the WebSocket: test_websocket_survives_hostile_frames
            names = re.findall(r"{(\w+)}", template)
            path = template
            for name in names:
                path = path.replace("{" + name + "}", quote(ids.get(name, "fuzz"), safe=""))
            yield from _path_cases(method, template, names, ids)
            yield from _query_cases(method, path, op)
            if method in {"POST", "PUT", "PATCH", "DELETE"}:
                yield from _body_cases(spec, method, path, op)


def _path_cases(
    method: str, template: str, names: list[str], ids: dict[str, str]
) -> Iterator[Case]:
    for name in names:
        for value in PATH_VALUES:
            path = template
            for other in names:
                seg = value if other == name else quote(ids.get(other, "fuzz"), safe="")
                path = path.replace("{" + other + "}", seg)
            body = b"{}" if method in {"POST", "PUT", "PATCH"} else None
            if path.endswith("/poll"):
                path += "?timeout=0"  # a valid room: answer at once rather than wait 25 s
            yield Case(f"path {name}={value[:20]}", method, path, body)


def _query_cases(method: str, path: str, op: dict[str, Any]) -> Iterator[Case]:
    body = b"{}" if method in {"POST", "PUT", "PATCH"} else None
    params = [p for p in op.get("parameters", []) if p.get("in") == "query"]
    base = "timeout=0" if path.endswith("/poll") else ""
    for param in params:
        name = param["name"]
        for value in QUERY_VALUES:
            if name == "timeout" and value == "":
                continue  # the default: a poll that waits 25 s
            query = "&".join(q for q in (base, f"{name}={value}") if q)
            expect = None
            if name in INTEGER_PARAMS and value in (str(BIG), str(-BIG - 1), "-1", "1e400"):
                expect = set(range(400, 500))
            if name == "timeout" and value in ("inf", "1e400", str(BIG)):
                expect = set(range(400, 500))
            yield Case(f"query {name}={value[:24]}", method, f"{path}?{query}", body, expect=expect)


def _body_cases(spec: dict[str, Any], method: str, path: str, op: dict[str, Any]) -> Iterator[Case]:
    if "multipart/form-data" in op.get("requestBody", {}).get("content", {}):
        yield from _upload_cases(path)
        return
    # Any route that takes a body — or none — refuses malformed JSON before anything else.
    for label, raw, expect, code in BODIES:
        yield Case(f"body {label}", method, path, raw, expect=expect, code=code)
    yield Case("text/plain", method, path, b'{"a": 1}', "text/plain", expect={415})
    yield Case(
        "two content types (ab)",
        method,
        path,
        b'{"a": 1}',
        None,
        headers={"Content-type": "text/plain", "Content-Type": "application/json"},
    )
    fields = json_body_fields(spec, op)
    if fields is None:
        return
    base = {name: sample(schema, name) for name, (schema, _) in fields.items()}
    unknown = json.dumps(base)[:-1] + (", " if base else "") + '"zz_unknown": '
    yield Case(
        "unknown field deep",
        method,
        path,
        (unknown + deep(65) + "}").encode(),
        expect={400},
        code="json_too_deep",
    )
    yield Case(
        "unknown field surrogate",
        method,
        path,
        (unknown + '"\\udfff"}').encode(),
        expect={400, 422},
    )
    yield Case("unknown field big", method, path, (unknown + str(BIG) + "}").encode())
    for name, (_, integer) in fields.items():
        for label, raw_value in FIELD_VALUES:
            others = {k: v for k, v in base.items() if k != name}
            text = json.dumps(others)[:-1] + (", " if others else "") + f'"{name}": {raw_value}}}'
            expect: set[int] | None = None
            code = None
            if label.startswith("deep"):
                expect, code = {400}, "json_too_deep"
            elif "surrogate" in label or (label in ("big", "bigger", "huge float") and integer):
                expect = {400, 422}
            yield Case(f"{name}={label}", method, path, text.encode(), expect=expect, code=code)


def _upload_cases(path: str) -> Iterator[Case]:
    boundary = "hubbubfuzz"

    def multipart(filename: bytes, caption: bytes | None, content: bytes = b"hello") -> bytes:
        parts = [
            b"--" + boundary.encode(),
            b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"',
            b"Content-Type: text/plain",
            b"",
            content,
        ]
        if caption is not None:
            parts += [
                b"--" + boundary.encode(),
                b'Content-Disposition: form-data; name="message"',
                b"",
                caption,
            ]
        parts += [b"--" + boundary.encode() + b"--", b""]
        return b"\r\n".join(parts)

    ctype = f"multipart/form-data; boundary={boundary}"
    for label, filename, caption in [
        ("NUL name", b"a\x00b.txt", None),
        ("surrogate name", b"\xed\xa0\x80.txt", None),
        ("traversal name", b"../../etc/passwd", None),
        ("long name", b"x" * 5000 + b".txt", None),
        ("surrogate caption", b"a.txt", b"\xed\xa0\x80"),
        ("not UTF-8 caption", b"a.txt", b"\xff\xfe"),
        ("NUL caption", b"a.txt", b"a\x00b"),
        ("overlong caption", b"a.txt", b"x" * 20_000),
        ("escape caption", b"a.txt", b'"\\ud800"'),
    ]:
        yield Case(f"upload {label}", "POST", path, multipart(filename, caption), ctype)
    yield Case("upload as JSON", "POST", path, deep(100).encode(), "application/json")
    yield Case("upload no boundary", "POST", path, b"--x--", "multipart/form-data")


async def run_case(http: httpx.AsyncClient, case: Case) -> str | None:
    """``None`` when the answer is acceptable, else what was wrong."""
    headers = {**user(USER), **case.headers}
    if case.content_type is not None and case.body is not None:
        headers["Content-Type"] = case.content_type
    request = http.build_request(case.method, case.path, headers=headers, content=case.body)
    try:
        response = await http.send(request, stream=True)
    except httpx.HTTPError as exc:
        return f"{case.method} {case.path[:80]} [{case.label}]: no answer ({exc!r})"
    try:
        status = response.status_code
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return None if status == 200 else f"stream answered {status}"
        body = await response.aread()
    except httpx.HTTPError as exc:
        return f"{case.method} {case.path[:80]} [{case.label}]: broken answer ({exc!r})"
    finally:
        await response.aclose()
    where = f"{case.method} {case.path[:80]} [{case.label}] → {status} {body[:200]!r}"
    if status >= 500:
        return where
    if case.expect is not None and status not in case.expect:
        return f"{where}; expected one of {sorted(case.expect)}"
    if status >= 400:
        try:
            err = json.loads(body)
        except ValueError:
            return f"{where}: the error is not JSON"
        if not (
            isinstance(err, dict)
            and set(err) == {"error"}
            and isinstance(err["error"], dict)
            and set(err["error"]) <= ERROR_KEYS
            and isinstance(err["error"].get("code"), str)
            and isinstance(err["error"].get("message"), str)
        ):
            return f"{where}: not the documented error shape"
        if case.code is not None and err["error"]["code"] != case.code:
            return f"{where}: expected code {case.code}"
    return None


async def test_every_route_survives_hostile_input(trust_server: Server) -> None:
    started = time.monotonic()
    async with client(trust_server.url, timeout=httpx.Timeout(20.0)) as http:
        sent = await say(http, USER, ROOM, "the message the fuzzer aims at")
        ids = {"room_id": ROOM, "message_id": sent["id"], "user_id": USER, "reaction": "👍"}
        spec = (await http.get("/openapi.json")).json()
        cases = list(route_cases(spec, ids))
        assert len(cases) > 500, len(cases)
        assert any(c.path == "/chat/messages" for c in cases)
        gate = asyncio.Semaphore(16)

        async def one(case: Case) -> str | None:
            async with gate:
                return await run_case(http, case)

        # What takes the caller out of the room or ends things goes last, so that every other
        # case meets the state it was written for (a member of the room, the message there).
        def ends_something(case: Case) -> bool:
            return case.method == "DELETE" or case.path.split("?")[0].endswith(
                ("/leave", "/logout")
            )

        problems = [
            p
            for batch in (
                [c for c in cases if not ends_something(c)],
                [c for c in cases if ends_something(c)],
            )
            for p in await asyncio.gather(*(one(c) for c in batch))
            if p
        ]
        assert not problems, f"{len(problems)} of {len(cases)} cases:\n" + "\n".join(problems[:40])

        # Still healthy, and a normal send still works and is stored.
        assert (await http.get("/healthz")).status_code == 200
        after = await say(http, USER, ROOM, "still here")
        r = await http.get(f"/chat/room/{ROOM}/history", headers=user(USER), params={"limit": 5})
        assert r.status_code == 200 and r.json()[-1]["id"] == after["id"]
    assert "Exception in ASGI application" not in trust_server.log()
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        # The reports that started this: each used to be a 500.
        (
            "POST",
            "/chat/messages",
            f'{{"room_id": "r", "message": "hi", "x": {deep(5000)}}}',
            400,
            "json_too_deep",
        ),
        (
            "POST",
            "/chat/messages",
            f'{{"room_id": "r", "message": "hi", "x": {deep(65)}}}',
            400,
            "json_too_deep",
        ),
        ("POST", "/chat/rooms", f'{{"name": "n", "x": {deep(65)}}}', 400, "json_too_deep"),
        (
            "POST",
            "/auth/register",
            '{"username": "\\ud800", "password": "correct horse battery"}',
            400,
            None,
        ),
        (
            "POST",
            "/auth/login",
            '{"username": "\\ud800", "password": "correct horse battery"}',
            400,
            None,
        ),
        ("POST", "/chat/messages", '{"room_id": "r", "message": "\\ud800"}', 400, None),
        ("GET", f"/chat/room/{ROOM}/history?after={BIG}", None, 422, None),
        ("GET", f"/chat/room/{ROOM}/history?before={BIG}", None, 422, None),
        ("GET", f"/chat/room/{ROOM}/history?after={2**53 + 1}", None, 422, None),
        ("GET", f"/chat/room/{ROOM}/history?after=-1", None, 422, None),
        ("GET", f"/chat/room/{ROOM}/history?limit={BIG}", None, 422, None),
    ],
)
async def test_reported_500s_are_client_errors(
    trust_server: Server, method: str, path: str, body: str | None, status: int, code: str | None
) -> None:
    async with client(trust_server.url) as http:
        await say(http, USER, ROOM, "so the history is not empty")
        r = await http.request(
            method,
            path,
            headers={**user(USER), "Content-Type": "application/json"},
            content=body.encode() if body is not None else None,
        )
        assert_error(r, status, code)


def _within_depth(levels: int) -> str:
    return f'{{"room_id": "{ROOM}", "message": "nested", "x": {deep(levels - 1)}}}'


async def test_depth_limit_is_64_levels(trust_server: Server) -> None:
    """64 levels (the object counts) are fine, and an unknown field is otherwise ignored."""
    async with client(trust_server.url) as http:
        headers = {**user(USER), "Content-Type": "application/json"}
        r = await http.post("/chat/messages", headers=headers, content=_within_depth(64))
        assert r.status_code == 201, r.text
        r = await http.post("/chat/messages", headers=headers, content=_within_depth(65))
        assert_error(r, 400, "json_too_deep")
        quoted = json.dumps({"room_id": ROOM, "message": "[" * 500 + '"\\' + "{" * 500})
        r = await http.post("/chat/messages", headers=headers, content=quoted)
        assert r.status_code == 201, r.text  # brackets inside strings are text
        assert r.json()["message"]["text"] == "[" * 500 + '"\\' + "{" * 500


WS_FRAMES: list[tuple[str, Any, str | None]] = [
    # (frame, the ref its error must carry, the error code)
    ('{"op": "ping", "ref": 1, "x": ' + deep(65) + "}", 1, "json_too_deep"),
    ('{"op": "ping", "ref": 2, "x": ' + deep(25_000) + "}", 2, "json_too_deep"),
    ('{"op": "ping", "x": ' + deep(25_000) + ', "ref": "late"}', "late", "json_too_deep"),
    ('{"ref": 7}', 7, None),
    ('{"op": 5, "ref": "a"}', "a", None),
    ('{"op": "send", "ref": 1, "room_id": 123}', 1, None),
    ('{"op": "nope", "ref": {"k": [1]}}', {"k": [1]}, "unknown_op"),
    ('{"op": "send", "ref": 3, "room_id": "r", "message": "\\ud800"}', 3, None),
    ('{"op": "send", "ref": 4, "room_id": "r", "message": "cut', 4, None),
    (f'{{"op": "subscribe", "ref": 5, "room_id": "r", "after_seq": {BIG}}}', 5, None),
    ('{"op": "subscribe", "ref": 6, "room_id": "r", "after_seq": -1}', 6, None),
    (f'{{"op": "read", "ref": 8, "room_id": "r", "seq": {BIG}}}', 8, None),
    ('{"op": "read", "ref": 9, "room_id": "r", "seq": 1e400}', 9, None),
    ('{"op": "typing", "ref": 10, "room_id": "\\u0000", "is_typing": true}', 10, None),
    ('{"op": "send", "ref": 11, "room_id": "r", "message": "   "}', 11, None),
    (
        '{"op": "send", "ref": 12, "room_id": "r", "message": ' + json.dumps("x" * 30_000) + "}",
        12,
        None,
    ),
    ("[1, 2, 3]", None, None),
    ('"ref"', None, None),
    ("null", None, None),
    ("\u0000", None, None),
    ("", None, None),
    ("[" * 60_000, None, "json_too_deep"),
]


async def test_websocket_survives_hostile_frames(trust_server: Server) -> None:
    url = "ws" + trust_server.url.removeprefix("http") + f"/chat/ws?user_id={USER}"
    async with connect(url, max_size=2**20) as ws:

        async def answer(ref: Any) -> dict[str, Any]:
            deadline = time.monotonic() + 5
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
                if frame["event"] in ("error", "pong", "ack", "subscribed", "ok") and (
                    frame.get("ref") == ref
                ):
                    return dict(frame)

        for raw, ref, code in WS_FRAMES:
            await ws.send(raw)
            frame = await answer(ref)
            assert frame["event"] == "error", (raw[:80], frame)
            assert set(frame["data"]) <= ERROR_KEYS and frame["data"]["message"], frame
            if code is not None:
                assert frame["data"]["code"] == code, (raw[:80], frame)
            # ... and the connection is still usable.
            await ws.send(json.dumps({"op": "ping", "ref": "after"}))
            assert (await answer("after"))["event"] == "pong", raw[:80]

        await ws.send(json.dumps({"op": "send", "ref": "ok", "room_id": ROOM, "message": "ws ok"}))
        ack = await answer("ok")
        assert ack["event"] == "ack" and ack["data"]["text"] == "ws ok", ack
    assert "Exception in ASGI application" not in trust_server.log()
