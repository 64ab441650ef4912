"""The raw route table (``api/routes.py``) and ``HubbubApp``'s dispatch from it, in process:
which requests the raw handlers get (with their path parameters), which fall through to
FastAPI, whose body is buffered first — the odd cases included."""

from __future__ import annotations

import dataclasses
import json
import re
from types import SimpleNamespace
from typing import Any

import pytest

from hubbub.api.openapi import raw_paths
from hubbub.api.raw import Message, Receive, Scope, Send
from hubbub.api.routes import (
    ROUTES,
    WEBSOCKET,
    Dispatch,
    RawHandler,
    RawRoute,
    compile_path,
    streams_body,
)
from hubbub.app import create_app
from hubbub.config import Settings
from hubbub.runtime import Runtime

Call = tuple[str, dict[str, str]]


# Path templates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/chat/room/abc/events", {"room_id": "abc"}),
        ("/chat/room/a.b:c~d-e_f/events", {"room_id": "a.b:c~d-e_f"}),
        ("/chat/room/%2F/events", {"room_id": "%2F"}),  # already unescaped by the server
        ("/chat/room//events", None),
        ("/chat/room/a/b/events", None),
        ("/chat/room/events", None),
        ("/chat/room/abc/events/", None),
        ("/chat/room/abc/eventsx", None),
        ("/xchat/room/abc/events", None),
    ],
)
def test_a_parameter_is_one_non_empty_segment(path: str, params: dict[str, str] | None) -> None:
    assert compile_path("/chat/room/{room_id}/events").match(path) == params


def test_templates_are_literal_around_their_parameters() -> None:
    pattern = compile_path("/a.b/{x}/c+d/{y}")
    assert pattern.match("/a.b/1/c+d/2") == {"x": "1", "y": "2"}
    assert pattern.match("/aXb/1/c+d/2") is None
    assert compile_path("/chat/events").regex is None  # exact: a dict lookup


def test_the_table_is_consistent() -> None:
    keys = [(r.method, r.path) for r in ROUTES]
    assert len(keys) == len(set(keys))
    assert len({r.operation_id for r in ROUTES}) == len(ROUTES)
    for route in ROUTES:
        names = re.findall(r"\{(\w+)\}", route.path)
        path_params = [p.name for p in route.parameters if p.where == "path"]
        assert names == path_params, route.path
        assert route.replies, route.path
        assert all(status >= 400 for status in route.errors), route.path


def test_the_document_has_every_raw_route() -> None:
    paths = raw_paths()
    for route in ROUTES:
        op = paths[route.path]["get" if route.method == WEBSOCKET else route.method.lower()]
        assert op["operationId"] == route.operation_id
        assert {int(s) for s in op["responses"]} == {*route.replies, *route.errors}


# Dispatch ------------------------------------------------------------------------------------


def recording(calls: list[Call]) -> tuple[RawRoute, ...]:
    """The real table with handlers that only note what they were given."""

    def build(route: RawRoute) -> RawRoute:
        def make(_: Runtime) -> RawHandler:
            async def handle(scope: Scope, receive: Receive, send: Send, p: dict[str, str]) -> None:
                calls.append((route.operation_id, p))
                if scope["type"] == "http":
                    await send({"type": "http.response.start", "status": 299, "headers": []})
                    await send({"type": "http.response.body", "body": b""})

            return handle

        return dataclasses.replace(route, build=make)

    return tuple(build(r) for r in ROUTES)


class Harness:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.fastapi: list[tuple[str, str, bytes, bool]] = []
        self.app = create_app(Settings(auth="jwt"))
        self.app.raw = Dispatch(object(), recording(self.calls))  # type: ignore[arg-type]

        async def fastapi(scope: Scope, receive: Receive, send: Send) -> None:
            message = await receive()
            original = message.get("body") == b"" and message.get("more_body") is True
            self.fastapi.append(
                (scope["method"], scope["path"], message.get("body", b""), original)
            )
            await send({"type": "http.response.start", "status": 298, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        self.app.api = fastapi  # type: ignore[assignment]

    async def request(
        self, method: str, path: str, body: bytes = b"", ctype: bytes = b"application/json"
    ) -> tuple[int, bytes]:
        # The body comes in a first empty chunk, then the rest: only a buffered request's
        # route sees it in one piece.
        messages: list[Message] = [
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": body, "more_body": False},
        ]
        sent: list[Message] = []

        async def receive() -> Message:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": b"",
            "headers": [(b"host", b"localhost"), (b"content-type", ctype)],
        }
        await self.app(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    async def websocket(self, path: str) -> list[Message]:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "websocket.connect"}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": path, "query_string": b"", "headers": []}
        await self.app(scope, receive, send)
        return sent


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.mark.parametrize(
    ("method", "path", "operation", "params"),
    [
        ("POST", "/chat/messages", "send_message", {}),
        ("GET", "/chat/events", "all_events", {}),
        ("GET", "/chat/room/r1/events", "room_events", {"room_id": "r1"}),
        ("GET", "/chat/room/r1/poll", "poll_room", {"room_id": "r1"}),
    ],
)
async def test_raw_routes_get_their_parameters(
    harness: Harness, method: str, path: str, operation: str, params: dict[str, str]
) -> None:
    status, _ = await harness.request(method, path, b'{"x": 1}')
    assert status == 299
    assert harness.calls == [(operation, params)]
    assert harness.fastapi == []


@pytest.mark.parametrize(
    "path", ["/chat/room//events", "/chat/room/a/b/events", "/chat/room/events"]
)
async def test_a_malformed_room_stream_is_404_here(harness: Harness, path: str) -> None:
    status, body = await harness.request("GET", path)
    assert status == 404
    assert json.loads(body)["error"]["code"] == "not_found"
    assert harness.calls == [] and harness.fastapi == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/chat/messages"),  # sending is a POST
        ("POST", "/chat/events"),
        ("DELETE", "/chat/room/r1/events"),  # not GET on a stream path: FastAPI's to answer
        ("POST", "/chat/room//events"),
        ("GET", "/chat/room//poll"),  # a malformed poll is FastAPI's too
        ("GET", "/chat/room/a/b/poll"),
        ("GET", "/chat/ws"),  # a plain GET of the WebSocket path
    ],
)
async def test_everything_else_falls_through_to_fastapi(
    harness: Harness, method: str, path: str
) -> None:
    status, _ = await harness.request(method, path)
    assert status == 298
    assert harness.calls == []
    assert [(m, p) for m, p, _, _ in harness.fastapi] == [(method, path)]


async def test_json_bodies_are_buffered_before_fastapi(harness: Harness) -> None:
    status, _ = await harness.request("POST", "/chat/rooms", b'{"name": "x"}')
    assert status == 298
    assert harness.fastapi == [("POST", "/chat/rooms", b'{"name": "x"}', False)]


async def test_a_buffered_body_is_checked_first(harness: Harness) -> None:
    status, body = await harness.request("POST", "/chat/rooms", b'{"name": ')
    assert status == 400 and json.loads(body)["error"]["code"] == "malformed_json"
    status, body = await harness.request("PATCH", "/chat/room/r1", b"x", b"text/plain")
    assert status == 415
    assert harness.fastapi == []


async def test_an_upload_body_is_not_buffered(harness: Harness) -> None:
    status, _ = await harness.request(
        "POST", "/chat/room/r1/files", b"--b\r\n", b"multipart/form-data; boundary=b"
    )
    assert status == 298
    assert harness.fastapi == [("POST", "/chat/room/r1/files", b"", True)]


def test_only_the_upload_route_streams_its_body() -> None:
    assert streams_body("POST", "/chat/room/r1/files")
    assert not streams_body("POST", "/chat/room//files")
    assert not streams_body("POST", "/chat/room/a/b/files")
    assert not streams_body("PUT", "/chat/room/r1/files")
    assert not streams_body("POST", "/chat/room/r1/files/x")


async def test_websockets(harness: Harness) -> None:
    assert await harness.websocket("/chat/ws") == []
    assert harness.calls == [("websocket", {})]
    closed = await harness.websocket("/chat/other")
    assert closed == [{"type": "websocket.close", "code": 1008}]


async def test_before_the_runtime_starts_everything_is_fastapis(harness: Harness) -> None:
    harness.app.raw = None
    status, _ = await harness.request("POST", "/chat/messages", b"{}")
    assert status == 298 and harness.calls == []
    assert harness.fastapi[0][3]  # not buffered either
    closed = await harness.websocket("/chat/ws")
    assert closed == [{"type": "websocket.close", "code": 1008}]


def test_dispatch_builds_each_handler_once() -> None:
    built: list[str] = []

    def counting(route: RawRoute) -> RawRoute:
        inner = route.build

        def build(rt: Any) -> RawHandler:
            built.append(route.operation_id)
            return inner(rt)

        return dataclasses.replace(route, build=build)

    # Builders read what their handler uses from the runtime once, at build time.
    runtime = SimpleNamespace(
        auth=None, limiter=None, writer=None, settings=SimpleNamespace(max_body_bytes=1)
    )
    dispatch = Dispatch(runtime, tuple(counting(r) for r in ROUTES))  # type: ignore[arg-type]
    assert sorted(built) == sorted(r.operation_id for r in ROUTES)
    found = dispatch.match("GET", "/chat/room/x/poll")
    assert found is not None and found[1] == {"room_id": "x"}
    assert dispatch.match("GET", "/chat/room/x/poll/") is None
