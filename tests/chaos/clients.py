"""Followers: one real client per transport, reconnecting and resuming the way real ones do.

Room SSE and ``/chat/events`` are read from a raw socket rather than httpx so that a fault can
cut them with a RST and stall them for real: the socket's receive buffer is made small, and a
stalled follower simply stops reading, so the server's write buffer fills and the server must
cut it off. WebSocket goes through the ``websockets`` library (same small buffer) and long-poll
through httpx. Every follower keeps the last id it saw and resumes from it, to the same node or
another, after every cut — nothing else; the oracle then compares what it shows with the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from tests.chaos.deploy import Node
from tests.chaos.model import Counters, RoomModel
from tests.chaos.record import Journal

STORED = ("message", "message_edited", "message_deleted", "reaction")
IDLE = 45.0  # the server pings every 15 s; this much silence means the connection is dead
RCVBUF = 4096


class Cut(Exception):
    """The connection ended or was refused; the follower reconnects."""


class Follower:
    kind = ""

    def __init__(
        self,
        name: str,
        token: str,
        rooms: list[str],
        nodes: list[Node],
        home: int,
        rng: random.Random,
        journal: Journal,
    ) -> None:
        self.name = name
        self.token = token
        self.rooms = rooms
        self.nodes = nodes
        self.node = home
        self.rng = rng
        self.journal = journal
        self.models = {r: RoomModel(r) for r in rooms}
        self.counts = Counters()
        self.stopping = False
        self.reading = asyncio.Event()  # cleared while stalled
        self.reading.set()
        self._abort: Callable[[], None] | None = None
        self.connected_at = 0.0
        self.failures = 0
        # (connection number, room, seq, id) of every message received: to explain a gap
        self.trail: list[tuple[int, str, int, Any]] = []

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def take(self, name: str, event_id: Any, data: Any) -> None:
        if name == "reset":
            self.counts.problems.append(f"unexpected reset: {data}")
        if name not in STORED or not isinstance(data, dict):
            return
        room = data.get("room_id")
        if room in self.models:
            if name == "message":
                self.trail.append((self.counts.reconnects, room, int(data["seq"]), event_id))
            self.models[room].apply(name, event_id, data, self.counts)

    async def run(self) -> None:
        while not self.stopping:
            try:
                await self.session(self.nodes[self.node])
            except (
                Cut,
                OSError,
                EOFError,  # asyncio.IncompleteReadError: cut in the middle of a chunk
                TimeoutError,
                httpx.HTTPError,
                WebSocketException,
            ):
                pass
            except Exception as exc:  # a checker bug must not pass for a quiet client
                self.counts.problems.append(f"follower crashed: {exc!r}")
            finally:
                self._abort = None
            if self.stopping:
                return
            self.counts.reconnects += 1
            # Back off while the node stays unreachable, as EventSource's `retry:` does.
            failing = time.monotonic() - self.connected_at > 2.0
            self.failures = self.failures + 1 if failing else 0
            await asyncio.sleep(self.rng.uniform(0.5, 1.0) * min(2.0, 0.1 * 2**self.failures))
            if self.rng.random() < 0.5:
                self.node = self.rng.randrange(len(self.nodes))

    async def session(self, node: Node) -> None:
        raise NotImplementedError

    def drop(self) -> None:
        """Cut the connection abruptly (RST), as a network blip or a closed laptop does."""
        if self._abort is not None:
            self._abort()

    def stall(self) -> None:
        self.reading.clear()

    def unstall(self) -> None:
        self.reading.set()

    def http_error(self, node: Node, status: int, what: str, started: float) -> None:
        if status >= 500:
            self.journal.server_error(node.index, status, f"{self.kind} {what}", started)
        else:
            self.counts.problems.append(f"{what} on node {node.index}: {status}")


async def small_socket(node: Node) -> socket.socket:
    """A connected socket with a tiny receive buffer, so a stall backs up to the server fast."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().sock_connect(sock, (node.host, node.port)), 5
        )
    except BaseException:
        sock.close()
        raise
    return sock


class SseFollower(Follower):
    """``text/event-stream`` over HTTP/1.1 chunks, parsed as a browser's EventSource does."""

    def __init__(self, *args: Any, path: str, cursor: str, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.path = path
        self.cursor = cursor

    async def session(self, node: Node) -> None:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection(sock=await small_socket(node), limit=4096)
        self._abort = writer.transport.abort
        try:
            head = (
                f"GET {self.path} HTTP/1.1\r\nHost: {node.host}:{node.port}\r\n"
                f"Authorization: Bearer {self.token}\r\nAccept: text/event-stream\r\n"
                f"Last-Event-ID: {self.cursor}\r\n\r\n"
            )
            writer.write(head.encode())
            status_line = await asyncio.wait_for(reader.readline(), 20)
            if not status_line:
                raise Cut
            status = int(status_line.split()[1])
            headers: dict[str, str] = {}
            while (line := await asyncio.wait_for(reader.readline(), 20)) not in (b"\r\n", b""):
                key, _, value = line.decode("latin-1").partition(":")
                headers[key.strip().lower()] = value.strip()
            if status != 200:
                self.http_error(node, status, f"GET {self.path}", started)
                raise Cut
            if "content-length" in headers:
                # Not a stream: "come back later" (``retry:`` and the error in a comment),
                # the way a busy or stopping server tells EventSource to reconnect.
                await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 20)
                raise Cut
            self.connected_at = time.monotonic()
            await self._events(reader)
        finally:
            writer.transport.abort()

    async def _events(self, reader: asyncio.StreamReader) -> None:
        buffer = b""
        name, last_id = "message", self.cursor
        data: list[str] = []
        while True:
            await self.reading.wait()
            size_line = await asyncio.wait_for(reader.readline(), IDLE)
            if not size_line:
                raise Cut
            size = int(size_line.strip() or b"0", 16)
            if size == 0:
                raise Cut  # the server ended the stream (shutdown, cut-off)
            buffer += (await asyncio.wait_for(reader.readexactly(size + 2), IDLE))[:-2]
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.decode()
                if line == "":
                    self.cursor = last_id  # EventSource: the id is taken at dispatch
                    if data:
                        self.take(name, last_id, json.loads("\n".join(data)))
                    name, data = "message", []
                elif line.startswith(":"):
                    continue
                else:
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "data":
                        data.append(value)
                    elif field == "event":
                        name = value
                    elif field == "id":
                        last_id = value


class RoomSse(SseFollower):
    kind = "sse"

    def __init__(self, *args: Any, **kw: Any) -> None:
        room = kw["rooms"][0]
        super().__init__(*args, path=f"/chat/room/{quote(room)}/events", cursor="0", **kw)


class AllRoomsSse(SseFollower):
    kind = "events"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, path="/chat/events", cursor="g0", **kw)


class WebSocketFollower(Follower):
    """``/chat/ws``: one subscribe per room, each resumed from that room's last id."""

    kind = "ws"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.cursors: dict[str, str] = dict.fromkeys(self.rooms, "0")

    async def session(self, node: Node) -> None:
        started = time.monotonic()
        sock = await small_socket(node)
        try:
            ws = await connect(
                f"ws://{node.host}:{node.port}/chat/ws",
                sock=sock,
                additional_headers=self.auth,
                max_queue=4,
                open_timeout=20,
                ping_interval=None,
                close_timeout=1,
            )
        except BaseException:
            sock.close()
            raise
        transport = ws.transport
        self._abort = transport.abort
        try:
            for room in self.rooms:
                after = self.cursors[room]
                op: dict[str, Any] = {"op": "subscribe", "room_id": room, "ref": room}
                op["after_seq"] = int(after) if after.isdigit() else after
                await ws.send(json.dumps(op))
            self.connected_at = time.monotonic()
            while True:
                await self.reading.wait()
                frame = json.loads(await asyncio.wait_for(ws.recv(), IDLE))
                event, data = frame.get("event"), frame.get("data")
                if event == "error":
                    code = (data or {}).get("code")
                    status = 503 if code == "store_unavailable" else 500
                    if code not in ("store_unavailable", "internal_error", "internal"):
                        status = 400
                    self.http_error(node, status, f"ws {frame.get('ref')} {code}", started)
                    raise Cut
                stored = event in STORED and isinstance(data, dict) and "id" in frame
                if stored and data.get("room_id") in self.cursors:
                    self.cursors[data["room_id"]] = str(frame["id"])
                self.take(str(event), frame.get("id"), data)
        finally:
            transport.abort()


class PollFollower(Follower):
    """Long-poll with ``changes=1``: the cursor is the ``next`` of the last answer."""

    kind = "poll"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.cursor = "0"
        self._dropped = False

    def _drop_poll(self, request: asyncio.Future[httpx.Response]) -> None:
        self._dropped = True
        request.cancel()

    async def session(self, node: Node) -> None:
        room = self.rooms[0]
        async with httpx.AsyncClient(base_url=node.url, timeout=20) as http:
            while True:
                await self.reading.wait()
                started = time.monotonic()
                request = asyncio.ensure_future(
                    http.get(
                        f"/chat/room/{quote(room)}/poll",
                        params={"after": self.cursor, "changes": 1, "timeout": 5},
                        headers=self.auth,
                    )
                )
                self._dropped = False
                self._abort = lambda req=request: self._drop_poll(req)
                try:
                    r = await request
                except asyncio.CancelledError:
                    if self.stopping or not self._dropped:
                        raise
                    raise Cut from None
                if r.status_code != 200:
                    self.http_error(node, r.status_code, "GET poll", started)
                    raise Cut
                self.connected_at = time.monotonic()
                body = r.json()
                for e in body["events"]:
                    self.take(e["event"], e["id"], e["data"])
                self.cursor = str(body["next"])


TRANSPORTS: dict[str, type[Follower]] = {
    "sse": RoomSse,
    "events": AllRoomsSse,
    "ws": WebSocketFollower,
    "poll": PollFollower,
}


async def stop_all(followers: list[Follower], tasks: list[asyncio.Task[None]]) -> None:
    for f in followers:
        f.stopping = True
        f.unstall()
        f.drop()
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
