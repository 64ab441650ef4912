"""Seed 004's "Testing Strategy / Load Testing", run as written:

    for i in {1..100}; do
        curl -H "Accept: text/event-stream" \\
             "http://localhost:8080/chat/room/test/events?user_id=user_$i" &
    done
    ab -n 1000 -c 50 -H "Content-Type: application/json" \\
       -p message.json http://localhost:8080/chat/messages

ApacheBench speaks HTTP/1.0, keeps no cookies (so every POST is a new trust-mode guest), sends
its own ``Content-type: text/plain`` before the user's ``Content-Type: application/json``, and
counts a response whose length differs from the first one's as failed. The seed does not show
``message.json``; it is the body the seed's own client sends (``room_id``, ``message``,
``timestamp``), on the room its streams watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Server, client, dechunk, user

pytestmark = pytest.mark.timeout(180)

ROOM = "test"
MESSAGE_JSON = b'{"room_id": "test", "message": "Load test message", "timestamp": 1700000000000}'
STREAMS = 100
REQUESTS = 1000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``hubbub serve --auth trust`` with its defaults (rate limits included), as the seed's
    reader would run it."""
    srv = Server(tmp_path_factory.mktemp("seed004"), auth="trust")
    srv.start()
    yield srv
    srv.stop()


def ab_request(port: int, body: bytes) -> bytes:
    """The bytes ``ab -p message.json -H "Content-Type: application/json"`` sends (captured
    from ApacheBench 2.3), header order and spelling included."""
    return (
        b"POST /chat/messages HTTP/1.0\r\n"
        + b"Content-length: %d\r\n" % len(body)
        + b"Content-type: text/plain\r\n"
        + b"Content-Type: application/json\r\n"
        + b"Host: localhost:%d\r\n" % port
        + b"User-Agent: ApacheBench/2.3\r\n"
        + b"Accept: */*\r\n"
        + b"\r\n"
        + body
    )


def exchange(port: int, request: bytes) -> tuple[int, dict[str, list[str]], bytes]:
    """Send one HTTP/1.0 request and read the answer to the end: the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status, headers, body


async def history_after(base_url: str, after: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with client(base_url) as http:
        while True:
            r = await http.get(
                f"/chat/room/{ROOM}/history",
                headers=user("history-reader"),
                params={"after": after, "limit": 200},
            )
            assert r.status_code == 200, r.text
            page = r.json()
            out += page
            if len(page) < 200:
                return out
            after = page[-1]["seq"]


async def head_seq(base_url: str) -> int:
    async with client(base_url) as http:
        r = await http.get(
            f"/chat/room/{ROOM}/history", headers=user("history-reader"), params={"limit": 1}
        )
        assert r.status_code == 200, r.text
        return int(r.json()[-1]["seq"]) if r.json() else 0


async def test_ab_request_bytes_are_stored(server: Server) -> None:
    """ab's exact request: HTTP/1.0, both Content-Type headers, no identity (a guest)."""
    before = await head_seq(server.url)
    lengths = set()
    sent = []
    for _ in range(12):  # seqs 9 → 10 and so on: the length must not follow the digits
        status, headers, body = await asyncio.to_thread(
            exchange, server.port, ab_request(server.port, MESSAGE_JSON)
        )
        assert status == 201, body
        assert headers["content-type"] == ["application/json; charset=utf-8"]
        assert int(headers["content-length"][0]) == len(body)
        assert any(c.startswith("hubbub_guest=") for c in headers.get("set-cookie", [])), headers
        answer = json.loads(body)
        assert answer["status"] == "sent"
        assert answer["message"]["room_id"] == ROOM
        assert answer["message"]["text"] == "Load test message"
        assert answer["message"]["timestamp"] == 1700000000000
        assert answer["message"]["user_id"].startswith("guest-")
        sent.append(answer["message"])
        lengths.add(len(body))
    assert len(lengths) == 1, f"ab counts differing lengths as failures: {lengths}"
    stored = await history_after(server.url, before)
    assert [m["id"] for m in stored] == [m["id"] for m in sent]
    assert len({m["user_id"] for m in sent}) == len(sent)  # ab keeps no cookies: new guests


def ab_missing() -> None:
    reason = "ab (ApacheBench, Debian package apache2-utils) is not installed; `make system-deps`"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: under CI it must run")
    pytest.skip(reason)


class Reader:
    """One of the seed's 100 ``curl`` streams: the real curl when there is one, else the same
    request over a raw socket. Keeps everything the stream received."""

    def __init__(self, port: int, index: int, out: Path) -> None:
        self.port = port
        self.url = f"http://localhost:{port}/chat/room/{ROOM}/events?user_id=user_{index}"
        self.index = index
        self.out = out
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None
        self.raw = bytearray()

    async def start(self) -> None:
        curl = shutil.which("curl")
        if curl:
            self.proc = await asyncio.create_subprocess_exec(
                curl,
                "-N",
                "-s",
                "-H",
                "Accept: text/event-stream",
                self.url,
                stdout=self.out.open("wb"),
                stderr=asyncio.subprocess.DEVNULL,
            )
        else:
            self.task = asyncio.create_task(self._raw())

    async def _raw(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        path = self.url.split(str(self.port), 1)[1]
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: localhost:{self.port}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        try:
            while data := await reader.read(65536):
                self.raw += data
        finally:
            writer.close()

    def text(self) -> str:
        if self.task is not None:
            return dechunk(bytes(self.raw)).decode()
        return self.out.read_text(errors="replace")

    def events(self) -> list[tuple[str, str]]:
        """(event name, data) of every complete event so far; a chat message is ``message``."""
        out = []
        for block in self.text().split("\n\n")[:-1]:
            name, data = "message", []
            for line in block.split("\n"):
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
            if data:
                out.append((name, "\n".join(data)))
        return out

    def message_ids(self) -> set[str]:
        return {json.loads(d)["id"] for n, d in self.events() if n == "message"}

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await self.task


@contextlib.asynccontextmanager
async def streams(port: int, folder: Path) -> AsyncIterator[list[Reader]]:
    readers = [Reader(port, i, folder / f"stream-{i}.txt") for i in range(1, STREAMS + 1)]
    try:
        for r in readers:
            await r.start()
        yield readers
    finally:
        for r in readers:
            await r.stop()


async def wait_until(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


async def test_seed_004_load_test_as_written(server: Server, tmp_path: Path) -> None:
    if shutil.which("ab") is None:
        ab_missing()
    started = time.monotonic()
    (tmp_path / "message.json").write_bytes(MESSAGE_JSON)
    before = await head_seq(server.url)
    async with streams(server.port, tmp_path) as readers:
        await wait_until(
            f"{STREAMS} streams to connect",
            lambda: all(any(n == "connected" for n, _ in r.events()) for r in readers),
            20,
        )
        proc = await asyncio.create_subprocess_exec(
            "ab",
            "-n",
            str(REQUESTS),
            "-c",
            "50",
            "-H",
            "Content-Type: application/json",
            "-p",
            "message.json",
            f"http://localhost:{server.port}/chat/messages",
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output = (await asyncio.wait_for(proc.communicate(), 60))[0].decode(errors="replace")
        assert proc.returncode == 0, output
        assert re.search(rf"(?m)^Complete requests:\s+{REQUESTS}$", output), output
        assert re.search(r"(?m)^Failed requests:\s+0$", output), output
        assert "Non-2xx responses" not in output, output

        stored = await history_after(server.url, before)
        assert len(stored) == REQUESTS, len(stored)
        assert all(m["text"] == "Load test message" for m in stored)
        ids = {m["id"] for m in stored}

        done: set[int] = set()

        def progress() -> bool:
            for r in readers:
                if r.index not in done and ids <= r.message_ids():
                    done.add(r.index)
            return len(done) == len(readers)

        await wait_until("every stream to receive every message", progress, 30)
        for r in readers:
            got = [json.loads(d)["id"] for n, d in r.events() if n == "message"]
            assert got == [m["id"] for m in stored], f"stream {r.index}: order or duplicates"
    assert "Exception in ASGI application" not in server.log()
    assert time.monotonic() - started < 60
