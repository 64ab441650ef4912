"""``POST /chat/messages`` on the HTTP protocol's fast lane (``http_protocol.py``), spoken to in
raw HTTP/1.1 over a socket: what the lane keeps of HTTP (keep-alive, pipelining in order,
HTTP/1.0, chunked bodies, the body limit, ``X-Forwarded-Proto`` from a trusted proxy), and the
same answers as uvicorn's ASGI path gives the same route (reached by another spelling of the
path, ``/chat/%6Dessages``, which the lane leaves to ASGI)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import Server

LIMIT = 4096


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(
        tmp_path_factory.mktemp("lane"),
        auth="trust",
        env={
            "HUBBUB_MAX_BODY_BYTES": str(LIMIT),
            "HUBBUB_RATE_LIMIT_BURST": "1000",
            "HUBBUB_RATE_LIMIT_PER_SECOND": "1000",
        },
    )
    srv.start()
    yield srv
    srv.stop()


class Conn:
    """One keep-alive connection: write raw requests, read whole responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: Server) -> Conn:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        return cls(reader, writer)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 10) == b""

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def post(
    body: bytes | dict[str, Any],
    *,
    path: str = "/chat/messages",
    user: str = "ann",
    extra: str = "",
    version: str = "1.1",
    ctype: str = "application/json",
) -> bytes:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    return (
        f"POST {path} HTTP/{version}\r\nHost: 127.0.0.1\r\nUser-ID: {user}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(raw)}\r\n{extra}\r\n"
    ).encode() + raw


def message(room: str, text: str) -> dict[str, Any]:
    return {"room_id": room, "message": text}


async def test_keep_alive_and_pipelined_requests_are_answered_in_order(server: Server) -> None:
    conn = await Conn.open(server)
    try:
        await conn.write(post(message("lane-a", "one")))
        status, headers, body = await conn.response()
        assert status == 201, body
        assert headers["content-type"] == "application/json; charset=utf-8"
        assert "connection" not in headers
        assert json.loads(body)["message"]["seq"] == 1

        # three requests in one write: fast, ASGI, fast — three answers, in that order
        await conn.write(
            post(message("lane-a", "two"))
            + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            + post(message("lane-a", "three"))
        )
        answers = [await conn.response() for _ in range(3)]
        assert [a[0] for a in answers] == [201, 200, 201]
        assert json.loads(answers[0][2])["message"]["text"] == "two"
        assert json.loads(answers[1][2])["status"] == "ok"
        assert json.loads(answers[2][2])["message"]["seq"] == 3

        # and a pipelined send behind a slower ASGI request waits for it
        await conn.write(
            b"GET /chat/room/lane-a/history HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-ID: ann\r\n\r\n"
            + post(message("lane-a", "four"))
        )
        history = await conn.response()
        sent = await conn.response()
        assert history[0] == 200
        assert [m["text"] for m in json.loads(history[2])] == ["one", "two", "three"]
        assert sent[0] == 201
        assert json.loads(sent[2])["message"]["seq"] == 4
    finally:
        await conn.close()


async def test_http_1_0_and_connection_close_end_the_connection(server: Server) -> None:
    for request in (
        post(message("lane-b", "old"), version="1.0"),
        post(message("lane-b", "bye"), extra="Connection: close\r\n"),
    ):
        conn = await Conn.open(server)
        try:
            await conn.write(request)
            status, headers, _ = await conn.response()
            assert status == 201
            assert headers["connection"] == "close"
            assert await conn.closed()
        finally:
            await conn.close()


async def test_a_chunked_body_is_read_whole(server: Server) -> None:
    raw = json.dumps(message("lane-c", "in pieces")).encode()
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(raw[i : i + 7]), raw[i : i + 7]) for i in range(0, len(raw), 7)
    )
    conn = await Conn.open(server)
    try:
        await conn.write(
            b"POST /chat/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-ID: ann\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for i in range(0, len(chunks), 5):  # and in many small writes
            await conn.write(chunks[i : i + 5])
            await asyncio.sleep(0.001)
        await conn.write(b"0\r\n\r\n")
        status, _, body = await conn.response()
        assert status == 201, body
        assert json.loads(body)["message"]["text"] == "in pieces"
    finally:
        await conn.close()


async def test_a_body_over_the_limit_is_413_and_the_connection_goes_on(server: Server) -> None:
    conn = await Conn.open(server)
    try:
        huge = json.dumps(message("lane-d", "x" * (LIMIT * 4))).encode()
        await conn.write(post(huge))
        status, _, body = await conn.response()
        assert status == 413
        assert json.loads(body)["error"]["code"] == "body_too_large"
        await conn.write(post(message("lane-d", "small")))
        status, _, body = await conn.response()
        assert status == 201
        assert json.loads(body)["message"]["seq"] == 1  # the large one stored nothing
    finally:
        await conn.close()


BAD_SENDS: list[tuple[str, bytes, dict[str, str]]] = [
    ("not JSON media type", b"{}", {"ctype": "text/plain"}),
    ("malformed JSON", b'{"room_id": "lane-e", "message": ', {}),
    ("wrong field type", b'{"room_id": "lane-e", "message": 5}', {}),
    ("bad room id", b'{"room_id": "no spaces allowed", "message": "x"}', {}),
    ("empty text", b'{"room_id": "lane-e", "message": ""}', {}),
    ("too deep", b'{"room_id": "lane-e", "message": "x", "x": ' + b"[" * 80 + b"]" * 80 + b"}", {}),
    ("too large", json.dumps(message("lane-e", "y" * LIMIT)).encode(), {}),
    ("bad user id", b'{"room_id": "lane-e", "message": "x"}', {"user": "x" * 300}),
    (
        "another site",
        b'{"room_id": "lane-e", "message": "x"}',
        {"extra": "Origin: https://evil.example\r\n"},
    ),
]


@pytest.mark.parametrize(("why", "raw", "how"), BAD_SENDS, ids=[b[0] for b in BAD_SENDS])
async def test_the_lane_and_asgi_give_the_same_answers(
    server: Server, why: str, raw: bytes, how: dict[str, str]
) -> None:
    user = how.get("user", "ann")
    ctype = how.get("ctype", "application/json")
    extra = how.get("extra", "")
    answers = []
    for path in ("/chat/messages", "/chat/%6Dessages"):
        conn = await Conn.open(server)
        try:
            await conn.write(post(raw, path=path, user=user, ctype=ctype, extra=extra))
            status, headers, body = await conn.response()
            answers.append((status, headers.get("content-type"), json.loads(body)))
        finally:
            await conn.close()
    fast, asgi = answers
    assert 400 <= fast[0] < 500, (why, fast)
    assert fast == asgi, why


async def test_x_forwarded_proto_from_a_trusted_proxy_counts(server: Server) -> None:
    """A page served as https://localhost through a proxy on this machine sends ``Origin:
    https://localhost``; the proxy says so with ``X-Forwarded-Proto``. Without it, the origin
    is another one (port 443, not 80): refused as cross-origin in trust mode."""
    answers = []
    for forwarded in ("", "X-Forwarded-Proto: https\r\n"):
        for path in ("/chat/messages", "/chat/%6Dessages"):
            conn = await Conn.open(server)
            try:
                request = post(
                    message("lane-f", "via proxy"),
                    path=path,
                    extra=f"Origin: https://localhost\r\n{forwarded}",
                ).replace(b"Host: 127.0.0.1", b"Host: localhost")
                await conn.write(request)
                status, _, _ = await conn.response()
                answers.append(status)
            finally:
                await conn.close()
    assert answers == [403, 403, 201, 201]
