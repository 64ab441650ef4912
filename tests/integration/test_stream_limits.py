"""Stream limits, black-box: at most N open streams per user across SSE, ``/chat/events``,
WebSocket and long-polls in flight (429 ``too_many_streams``), every way a stream ends gives its
slot back, admission control refuses streams beyond those being set up at once (503
``server_busy``), and the ``retry:`` each SSE connection gets is jittered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.support import PASSWORD, Server, client

KINDS = ("room", "events", "ws", "poll")


@dataclass
class Who:
    user_id: str
    headers: dict[str, str]
    refresh_token: str | None = None
    name: str = ""


@dataclass
class Refusal:
    status: int
    retry_after: str | None
    body: dict[str, Any]


class Held:
    """One open stream: a raw HTTP connection (SSE, long-poll) or a WebSocket."""

    def __init__(
        self,
        writer: asyncio.StreamWriter | None = None,
        ws: ClientConnection | None = None,
        reader: asyncio.StreamReader | None = None,
        retry: int | None = None,
    ) -> None:
        self.writer = writer
        self.reader = reader
        self.ws = ws
        self.retry = retry

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


class Limits:
    """Opens streams of each kind against one server; ``open`` answers a :class:`Held`
    stream or the :class:`Refusal`."""

    def __init__(self, server: Server, room: str) -> None:
        self.server = server
        self.room = room

    def _path(self, kind: str) -> str:
        if kind == "room":
            return f"/chat/room/{self.room}/events"
        if kind == "events":
            return "/chat/events"
        return f"/chat/room/{self.room}/poll?timeout=30"

    async def open(self, kind: str, who: Who) -> Held | Refusal:
        if kind == "ws":
            return await self._ws(who)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in who.headers.items())
        writer.write(
            f"GET {self._path(kind)} HTTP/1.1\r\nHost: 127.0.0.1:{self.server.port}\r\n"
            f"Accept: text/event-stream\r\n{extra}\r\n".encode()
        )
        try:
            # A long-poll with nothing to answer sends nothing: silence means in flight.
            head = await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), 1.0 if kind == "poll" else 10
            )
        except TimeoutError:
            if kind != "poll":
                raise
            return Held(writer, reader=reader)
        status = int(head.split(b" ", 2)[1])
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (
                line.decode().partition(":") for line in head.split(b"\r\n")[1:] if line
            )
        }
        if status != 200:
            body = await asyncio.wait_for(
                reader.readexactly(int(headers.get("content-length", "0"))), 10
            )
            writer.close()
            return Refusal(status, headers.get("retry-after"), json.loads(body))
        if kind == "poll":
            raise AssertionError("the long-poll was answered at once")
        if "content-length" in headers:
            # A temporary refusal of an SSE stream: a complete 200 answer with ``retry:`` and
            # the error in a comment (a live stream has no length).
            body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
            writer.close()
            retry = re.search(rb"retry: (\d+)", body)
            comment = re.search(rb"\n: (\{.*\})\n", body)
            assert retry is not None and comment is not None, body
            return Refusal(status, headers.get("retry-after"), json.loads(comment.group(1)))
        seen = b""
        while b"event: connected" not in seen:
            seen += await asyncio.wait_for(reader.read(65536), 10)
        retry = re.search(rb"retry: (\d+)", seen)
        return Held(writer, reader=reader, retry=int(retry.group(1)) if retry else None)

    async def _ws(self, who: Who) -> Held | Refusal:
        url = f"ws://127.0.0.1:{self.server.port}/chat/ws"
        try:
            ws = await connect(url, additional_headers=who.headers, open_timeout=10)
        except InvalidStatus as exc:
            response = exc.response
            return Refusal(
                response.status_code,
                response.headers.get("Retry-After"),
                json.loads(response.body or b"{}"),
            )
        return Held(ws=ws)


def held(result: Held | Refusal) -> Held:
    assert isinstance(result, Held), result
    return result


def refused(result: Held | Refusal, status: int, code: str) -> Refusal:
    assert isinstance(result, Refusal), f"expected {status} {code}, the stream opened"
    assert result.status == status, result
    assert set(result.body) == {"error"}, result.body
    assert result.body["error"]["code"] == code, result.body
    assert result.body["error"]["message"]
    assert result.retry_after is not None and result.retry_after.isdigit(), result
    assert int(result.retry_after) >= 1
    return result


async def eventually_opens(limits: Limits, kind: str, who: Who, timeout: float = 5) -> Held:
    """A slot given back on the server's side follows the client's close by a moment."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await limits.open(kind, who)
        if isinstance(result, Held):
            return result
        assert result.body["error"]["code"] == "too_many_streams", result
        assert asyncio.get_running_loop().time() < deadline, "the slot never came back"
        await asyncio.sleep(0.05)


async def longpolls_in_flight(server: Server, n: int) -> None:
    """Wait until the server counts ``n`` long-polls (the request has no other echo)."""
    pattern = re.compile(r'hubbub_connections\{transport="longpoll"\} (\S+)')
    async with client(server.url) as http:
        for _ in range(200):
            found = pattern.search((await http.get("/metrics")).text)
            if found and float(found.group(1)) >= n:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"never saw {n} long-polls in flight")


@contextlib.asynccontextmanager
async def holding() -> AsyncIterator[list[Held]]:
    streams: list[Held] = []
    try:
        yield streams
    finally:
        await asyncio.gather(*[s.close() for s in streams], return_exceptions=True)


# servers and identities ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["trust", "jwt"])
def capped(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp(f"cap-{request.param}"),
        auth=request.param,
        args=["--max-streams-per-user", "3"],
        env={"HUBBUB_RATE_LIMIT_PER_SECOND": "0"},
    ).start()
    yield server
    server.stop()


async def person(server: Server, prefix: str) -> Who:
    if server.auth == "trust":
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        return Who(name, {"User-ID": name})
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    async with client(server.url) as http:
        r = await http.post("/auth/register", json={"username": name, "password": PASSWORD})
        assert r.status_code == 201, r.text
        r = await http.post("/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        body = r.json()
    return Who(
        body["user"]["id"],
        {"Authorization": f"Bearer {body['access_token']}"},
        body["refresh_token"],
        name,
    )


async def public_room(server: Server, owner: Who) -> str:
    async with client(server.url) as http:
        if server.auth == "trust":
            room = f"limits-{uuid.uuid4().hex[:8]}"
            r = await http.post(
                "/chat/messages", headers=owner.headers, json={"room_id": room, "message": "hi"}
            )
            assert r.status_code == 201, r.text
            return room
        r = await http.post(
            "/chat/rooms",
            headers=owner.headers,
            json={"name": f"limits {uuid.uuid4().hex[:6]}", "visibility": "public"},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


# the per-user cap ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_the_stream_past_the_cap_is_429_on_every_transport(capped: Server, kind: str) -> None:
    alice, bob = await person(capped, "alice"), await person(capped, "bob")
    limits = Limits(capped, await public_room(capped, alice))
    async with holding() as streams:
        for _ in range(3):
            streams.append(held(await limits.open(kind, alice)))
        if kind == "poll":
            await longpolls_in_flight(capped, 3)
        for other in KINDS:  # a full user is refused on every transport
            refused(await limits.open(other, alice), 429, "too_many_streams")
        bob_stream = held(await limits.open(kind, bob))  # another user is not affected
        streams.append(bob_stream)
        await streams.pop(0).close()
        streams.append(await eventually_opens(limits, kind, alice))
        refused(await limits.open(kind, alice), 429, "too_many_streams")


async def test_the_cap_counts_every_transport_together(capped: Server) -> None:
    alice = await person(capped, "mix")
    limits = Limits(capped, await public_room(capped, alice))
    async with holding() as streams:
        for kind in ("room", "ws", "poll"):
            streams.append(held(await limits.open(kind, alice)))
        await longpolls_in_flight(capped, 1)
        refused(await limits.open("events", alice), 429, "too_many_streams")
        # The long-poll is answered (a message wakes it): its slot comes back.
        poll = streams.pop()
        async with client(capped.url) as http:
            r = await http.post(
                "/chat/messages",
                headers=alice.headers,
                json={"room_id": limits.room, "message": "wake up"},
            )
            assert r.status_code == 201, r.text
        assert poll.reader is not None
        assert b"wake up" in await asyncio.wait_for(poll.reader.read(65536), 10)
        await poll.close()
        streams.append(await eventually_opens(limits, "events", alice))


async def test_a_revoked_session_gives_its_slots_back(capped: Server) -> None:
    if capped.auth != "jwt":
        pytest.skip("sessions are a jwt-mode thing")
    alice = await person(capped, "revoked")
    limits = Limits(capped, await public_room(capped, alice))
    async with holding() as streams:
        for kind in ("room", "events", "ws"):
            streams.append(held(await limits.open(kind, alice)))
        refused(await limits.open("room", alice), 429, "too_many_streams")
        async with client(capped.url) as http:
            r = await http.post("/auth/logout", json={"refresh_token": alice.refresh_token})
            assert r.status_code in (200, 204), r.text
        # The server ends the three streams itself; a new session gets all three slots.
        async with client(capped.url) as http:
            r = await http.post("/auth/login", json={"username": alice.name, "password": PASSWORD})
            assert r.status_code == 200, r.text
            fresh = Who(alice.user_id, {"Authorization": f"Bearer {r.json()['access_token']}"})
        streams.append(await eventually_opens(limits, "room", fresh))
        for kind in ("events", "ws"):
            streams.append(held(await limits.open(kind, fresh)))
        refused(await limits.open("poll", fresh), 429, "too_many_streams")


async def test_default_cap_is_100_and_all_100_slots_come_back(data_dir: Path) -> None:
    server = Server(data_dir, auth="trust", env={"HUBBUB_RATE_LIMIT_PER_SECOND": "0"}).start()
    try:
        who = Who("hundred", {"User-ID": "hundred"})
        limits = Limits(server, await public_room(server, who))
        for round_ in range(2):
            async with holding() as streams:
                kinds = ["room", "events", "ws"]
                if round_ == 0:
                    streams.extend([held(await limits.open(kinds[i % 3], who)) for i in range(100)])
                else:
                    streams.append(await eventually_opens(limits, "room", who, timeout=15))
                    for i in range(1, 100):
                        streams.append(held(await limits.open(kinds[i % 3], who)))
                for kind in KINDS:
                    refused(await limits.open(kind, who), 429, "too_many_streams")
            # all 100 closed by the client: round 2 must get every slot back
    finally:
        server.stop()


# admission control and jitter ------------------------------------------------------------------


def stuck_replay(port: int, room: str) -> socket.socket:
    """A stream whose replay cannot finish: it resumes from the start of a big room and never
    reads, so the server waits on its full buffer while setting it up."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET /chat/room/{room}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"User-ID: stuck\r\nLast-Event-ID: 0\r\n\r\n".encode()
    )
    return sock


async def test_admission_refuses_streams_beyond_those_being_set_up(data_dir: Path) -> None:
    server = Server(
        data_dir,
        auth="trust",
        args=["--max-pending-streams", "1"],
        env={"HUBBUB_RATE_LIMIT_PER_SECOND": "0", "HUBBUB_STREAM_BUFFER_BYTES": "16384"},
    ).start()
    try:
        room = "big"
        async with client(server.url) as http:
            text = "€" * 3990
            for i in range(0, 200, 20):
                rs = await asyncio.gather(
                    *[
                        http.post(
                            "/chat/messages",
                            headers={"User-ID": "filler"},
                            json={"room_id": room, "message": f"{n} {text}"},
                        )
                        for n in range(i, i + 20)
                    ]
                )
                assert all(r.status_code == 201 for r in rs)
        limits = Limits(server, room)
        sock = stuck_replay(server.port, room)
        try:
            who = Who("waiting", {"User-ID": "waiting"})
            deadline = asyncio.get_running_loop().time() + 10
            while True:  # until the stuck replay holds the one setup slot
                result = await limits.open("room", who)
                if isinstance(result, Refusal):
                    break
                await result.close()
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            # SSE answers 200 and tells EventSource when to come back (it would give up for
            # good on a 503); the others get the 503.
            busy = refused(result, 200, "server_busy")
            assert 3 <= int(busy.retry_after or 0) <= 5, busy
            refused(await limits.open("events", who), 200, "server_busy")
            for kind in ("ws", "poll"):
                refused(await limits.open(kind, who), 503, "server_busy")
            async with client(server.url) as http:  # nothing else is refused
                assert (await http.get("/healthz")).status_code == 200
                r = await http.get(f"/chat/room/{room}/history", headers={"User-ID": "w"})
                assert r.status_code == 200
        finally:
            sock.close()
        # The stuck client went away: its setup slot is free again.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            result = await limits.open("room", Who("later", {"User-ID": "later"}))
            if isinstance(result, Held):
                await result.close()
                break
            assert result.body["error"]["code"] == "server_busy"
            assert asyncio.get_running_loop().time() < deadline, "admission never recovered"
            await asyncio.sleep(0.1)
    finally:
        server.stop()


async def test_retry_is_jittered_per_connection(capped: Server) -> None:
    if capped.auth != "trust":
        pytest.skip("one mode is enough: the value does not depend on authentication")
    limits = Limits(capped, "jitter")
    values = []
    for i in range(12):
        who = Who(f"j{i}", {"User-ID": f"j{i}"})
        stream = held(await limits.open("room" if i % 2 else "events", who))
        assert stream.retry is not None
        values.append(stream.retry)
        await stream.close()
    assert all(3000 <= v < 6000 for v in values), values
    assert len(set(values)) >= 6, values
