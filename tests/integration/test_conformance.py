"""Transport conformance: every way of receiving a room's messages meets the same bar.

Each receive transport gets one small client behind a common async interface (:class:`Receiver`:
``open(room, after=None)``, ``messages()``, ``wait_messages(n)``, ``close()``), and every
scenario below is parametrised over :data:`TRANSPORTS`. A new transport is added there once (a
``Receiver`` subclass) and then has to pass delivery, ordering, resume, auth, slow-client and
keep-alive like the others; a scenario that cannot apply to it must say why in the class
(see ``no_slow_client``), and shows up as a skip with that reason.

The clients are deliberately ordinary: SSE over httpx (``Last-Event-ID`` to resume), WebSocket
over the ``websockets`` library (``subscribe`` with ``after_seq``), long-poll over httpx
(``after``). The raw-socket helpers at the bottom (a hand-made WebSocket handshake and frame
reader) are shared with ``test_websocket.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode

from tests.support import Server, SSEEvent, SSEStream, client, dechunk

# credentials -------------------------------------------------------------------------------

Creds = tuple[dict[str, str], dict[str, str]]  # (headers, query parameters)
Auth = Callable[[], Awaitable[Creds]]


def trust(user: str) -> Auth:
    """Trust mode, the seeds' way: ``?user_id=`` (what EventSource and WebSocket can send)."""

    async def creds() -> Creds:
        return {}, {"user_id": user}

    return creds


def bearer(token: str, **params: str) -> Auth:
    async def creds() -> Creds:
        return {"Authorization": f"Bearer {token}"}, dict(params)

    return creds


def tickets(base_url: str, token: str) -> Auth:
    """A fresh one-time ``?ticket=`` for every connection (long-poll: every request)."""

    async def creds() -> Creds:
        async with client(base_url) as http:
            r = await http.post("/auth/ticket", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code in (200, 201), r.text
            return {}, {"ticket": r.json()["ticket"]}

    return creds


def anonymous() -> Auth:
    async def creds() -> Creds:
        return {}, {}

    return creds


class Refused(Exception):
    """The transport would not let us in: an HTTP status (SSE, long-poll, WebSocket handshake)
    or a WebSocket close code, plus the error code the server gave, if any."""

    def __init__(self, status: int, code: str | None) -> None:
        super().__init__(f"refused: {status} {code}")
        self.status = status
        self.code = code


def _error_code(body: bytes) -> str | None:
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


# the common interface ----------------------------------------------------------------------


class Receiver:
    """One client of one transport, listening to one room."""

    name: ClassVar[str]
    #: HTTP status or close code when credentials are missing / name someone else.
    unauthenticated: ClassVar[int]
    forbidden: ClassVar[int]
    #: Why the slow-client scenario does not apply (``None``: it does, see ``slow_reader``).
    no_slow_client: ClassVar[str | None] = None

    def __init__(self, base_url: str, auth: Auth) -> None:
        self.base_url = base_url
        self.auth = auth
        self.room = ""
        self.failure: str | None = None  # set when the transport broke unexpectedly

    async def open(self, room: str, after: int | None = None) -> None:
        """Start listening; returns once anything sent from now on is sure to arrive.
        ``after``: resume after that seq (replay from storage, then live)."""
        raise NotImplementedError

    def messages(self) -> list[dict[str, Any]]:
        """The chat messages received so far, in arrival order (the message JSON)."""
        raise NotImplementedError

    def ids(self) -> list[Any]:
        """The transport-level cursor each message came with (SSE ``id:``, WebSocket ``id``)."""
        raise NotImplementedError

    def keepalive_signals(self) -> int:
        """How many keep-alive signals arrived while nothing else did."""
        raise NotImplementedError

    def is_open(self) -> bool:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def wait_messages(self, n: int, timeout: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.messages()) < n:
            if self.failure is not None or not self.is_open():
                raise AssertionError(
                    f"{self.name}: closed with {len(self.messages())}/{n} messages ({self.failure})"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: only {len(self.messages())}/{n} messages")
            await asyncio.sleep(0.01)
        return self.messages()

    @staticmethod
    def slow_reader(port: int, room: str, user: str) -> RawReader:
        """A client that connects, subscribes, and then never reads again."""
        raise NotImplementedError


class RawReader:
    """A raw socket with a tiny receive buffer; ``seqs`` parses what it did receive."""

    def __init__(self, sock: socket.socket, seqs: Callable[[bytes], list[int]]) -> None:
        self.sock = sock
        self.seqs = seqs


def tiny_socket(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


# SSE ---------------------------------------------------------------------------------------


class SSEReceiver(Receiver):
    name = "sse"
    unauthenticated = 401
    forbidden = 403

    def __init__(self, base_url: str, auth: Auth) -> None:
        super().__init__(base_url, auth)
        self._http: httpx.AsyncClient | None = None
        self._response: httpx.Response | None = None
        self._stream = SSEStream()
        self._task: asyncio.Task[None] | None = None
        self._parsed: list[dict[str, Any]] = []
        self._seen = 0

    async def open(self, room: str, after: int | None = None) -> None:
        self.room = room
        headers, params = await self.auth()
        if after is not None:
            headers = {**headers, "Last-Event-ID": str(after)}
        self._http = client(self.base_url)
        request = self._http.build_request(
            "GET", f"/chat/room/{room}/events", headers=headers, params=params
        )
        response = await self._http.send(request, stream=True)
        if response.status_code != 200:
            body = await response.aread()
            await response.aclose()
            await self._http.aclose()
            raise Refused(response.status_code, _error_code(body))
        assert response.headers["content-type"].startswith("text/event-stream")
        self._response = response
        self._task = asyncio.create_task(consume_sse(response, self._stream))
        await self._stream.wait_for(lambda s: bool(s.named("connected")), 10)

    def messages(self) -> list[dict[str, Any]]:
        events = self._stream.events
        for e in events[self._seen :]:  # parse each event once: this is called in a loop
            if e.event == "message":
                self._parsed.append(e.json())
        self._seen = len(events)
        return list(self._parsed)

    def ids(self) -> list[Any]:
        return [int(e.id) if e.id else None for e in self._stream.events if e.event == "message"]

    def keepalive_signals(self) -> int:
        return sum(1 for c in self._stream.comments if c.strip() == ": ping")

    def is_open(self) -> bool:
        return self._task is not None and not self._stream.closed

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._response is not None:
            await self._response.aclose()
        if self._http is not None:
            await self._http.aclose()

    @staticmethod
    def slow_reader(port: int, room: str, user: str) -> RawReader:
        sock = tiny_socket(port)
        sock.sendall(
            f"GET /chat/room/{room}/events?user_id={user} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        seen = b""
        while b"event: connected" not in seen:
            got = sock.recv(4096)
            assert got, seen
            seen += got
        return RawReader(sock, lambda raw: sse_seqs(seen + raw))


async def consume_sse(response: httpx.Response, stream: SSEStream) -> None:
    """An SSE parser as the spec has it: lines end at CR, LF or CRLF and nowhere else (not at
    U+2028 or U+0085, where ``str.splitlines`` — and so httpx's ``aiter_lines`` — would cut)."""
    event, data, last_id, buf = "message", [], None, b""
    try:
        async for chunk in response.aiter_bytes():
            buf += chunk
            while True:
                cut = re.search(rb"\r\n|\r|\n", buf)
                if cut is None or (cut.group() == b"\r" and cut.end() == len(buf)):
                    break  # a lone CR at the end may be half of a CRLF
                raw, buf = buf[: cut.start()], buf[cut.end() :]
                line = raw.decode()
                if line == "":
                    if data:
                        stream._add(SSEEvent(event, "\n".join(data), last_id))
                    event, data = "message", []
                elif line.startswith(":"):
                    stream.comments.append(line)
                    stream._changed.set()
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "data":
                        data.append(value)
                    elif name == "event":
                        event = value
                    elif name == "id":
                        last_id = value
                    elif name == "retry":
                        stream.retry = int(value)
    except (httpx.HTTPError, asyncio.CancelledError):
        pass
    finally:
        stream.closed = True
        stream._changed.set()


def sse_seqs(raw: bytes) -> list[int]:
    text = dechunk(raw).decode(errors="replace")
    complete = text[: text.rfind("\n\n") + 2]
    return [int(x) for x in re.findall(r"^id: (\d+)\ndata: ", complete, re.M)]


# WebSocket ---------------------------------------------------------------------------------


class PingCountingConnection(ClientConnection):
    """The ``websockets`` client answers pings itself; this also notes each one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pings: list[bytes] = []

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pings.append(bytes(event.data))
        super().process_event(event)


def ws_url(base_url: str, params: dict[str, str] | None = None) -> str:
    url = "ws" + base_url.removeprefix("http") + "/chat/ws"
    return url + ("?" + urlencode(params) if params else "")


class WebSocketReceiver(Receiver):
    name = "ws"
    unauthenticated = 1008  # an `error` frame, then close 1008 (policy violation)
    forbidden = 1008

    def __init__(self, base_url: str, auth: Auth) -> None:
        super().__init__(base_url, auth)
        self.ws: PingCountingConnection | None = None
        self.frames: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def open(self, room: str, after: int | None = None) -> None:
        self.room = room
        headers, params = await self.auth()
        try:
            ws = await connect(
                ws_url(self.base_url, params),
                additional_headers=headers,
                ping_interval=None,  # only the server's keep-alive
                max_queue=None,
                open_timeout=10,
                create_connection=PingCountingConnection,
            )
        except InvalidStatus as exc:
            raise Refused(exc.response.status_code, _error_code(exc.response.body or b"")) from None
        assert isinstance(ws, PingCountingConnection)
        self.ws = ws
        op: dict[str, Any] = {"op": "subscribe", "room_id": room, "ref": "sub"}
        if after is not None:
            op["after_seq"] = after
        with contextlib.suppress(ConnectionClosed):  # refused: the close may already be here
            await ws.send(json.dumps(op))
        code: str | None = None
        while True:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            except ConnectionClosed as exc:
                raise Refused(exc.rcvd.code if exc.rcvd else 1006, code) from None
            if frame["event"] == "error":
                code = frame["data"]["code"]
                if frame.get("ref") == "sub":  # refused by the op: the socket stays open
                    await ws.close()
                    raise Refused(0, code)
                continue
            self.frames.append(frame)
            if frame["event"] == "subscribed" and frame.get("ref") == "sub":
                break
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                self.frames.append(json.loads(raw))
        except ConnectionClosed as exc:
            self.failure = f"closed: {exc}"

    def _message_frames(self) -> list[dict[str, Any]]:
        return [
            f for f in self.frames if f["event"] == "message" and f["data"]["room_id"] == self.room
        ]

    def messages(self) -> list[dict[str, Any]]:
        return [f["data"] for f in self._message_frames()]

    def ids(self) -> list[Any]:
        return [f.get("id") for f in self._message_frames()]

    def keepalive_signals(self) -> int:
        return 0 if self.ws is None else len(self.ws.pings)

    def is_open(self) -> bool:
        return self.ws is not None and self._task is not None and not self._task.done()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.ws is not None:
            await self.ws.close()

    @staticmethod
    def slow_reader(port: int, room: str, user: str) -> RawReader:
        raw = RawWebSocket.connect(port, f"/chat/ws?user_id={user}", rcvbuf=4096)
        raw.send_json({"op": "subscribe", "room_id": room, "ref": 1})
        while True:
            opcode, payload = raw.read_frame()
            if opcode == 1 and json.loads(payload)["event"] == "subscribed":
                break
        return RawReader(raw.sock, ws_seqs)


def ws_seqs(raw: bytes) -> list[int]:
    frames, _ = parse_ws_frames(raw)
    seqs = []
    for opcode, payload in frames:
        if opcode == 1:
            frame = json.loads(payload)
            if frame["event"] == "message":
                assert frame["id"] == frame["data"]["seq"]
                seqs.append(frame["data"]["seq"])
    return seqs


# long-poll ---------------------------------------------------------------------------------


class LongPollReceiver(Receiver):
    name = "longpoll"
    unauthenticated = 401
    forbidden = 403
    no_slow_client = (
        "long-poll holds no stream to fall behind on: each answer is one bounded JSON array "
        "(at most `limit` messages) and the next request says where to resume with `after`, "
        "so there is no per-connection buffer to overflow and nothing to cut off"
    )

    def __init__(self, base_url: str, auth: Auth, poll_timeout: float = 5.0) -> None:
        super().__init__(base_url, auth)
        self.poll_timeout = poll_timeout
        self.cursor = 0
        self._messages: list[dict[str, Any]] = []
        self.empty_answers: list[float] = []  # how long each `[]` answer took
        self._http: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def _poll(self, timeout: float) -> httpx.Response:
        assert self._http is not None
        headers, params = await self.auth()
        return await self._http.get(
            f"/chat/room/{self.room}/poll",
            headers=headers,
            params={**params, "after": self.cursor, "timeout": timeout},
        )

    async def open(self, room: str, after: int | None = None) -> None:
        self.room = room
        self._http = client(self.base_url, timeout=httpx.Timeout(self.poll_timeout + 15))
        if after is None:
            # A long-poll client starts from the room's head, which it learns from history
            # (clients load history with the history route; streams are live only).
            headers, params = await self.auth()
            r = await self._http.get(
                f"/chat/room/{room}/history", headers=headers, params={**params, "limit": 1}
            )
            if r.status_code != 200:
                await self._http.aclose()
                raise Refused(r.status_code, _error_code(r.content))
            after = r.json()[-1]["seq"] if r.json() else 0
        self.cursor = after
        first = await self._poll(0)  # at once: refusals surface here
        if first.status_code != 200:
            await self._http.aclose()
            raise Refused(first.status_code, _error_code(first.content))
        self._take(first.json(), 0.0)
        self._task = asyncio.create_task(self._run())

    def _take(self, batch: list[dict[str, Any]], elapsed: float) -> None:
        if not batch:
            self.empty_answers.append(elapsed)
            return
        self._messages.extend(batch)
        self.cursor = batch[-1]["seq"]

    async def _run(self) -> None:
        try:
            while True:
                started = time.monotonic()
                r = await self._poll(self.poll_timeout)
                if r.status_code != 200:
                    self.failure = f"{r.status_code} {r.text}"
                    return
                self._take(r.json(), time.monotonic() - started)
        except httpx.HTTPError as exc:
            self.failure = repr(exc)

    def messages(self) -> list[dict[str, Any]]:
        return list(self._messages)

    def ids(self) -> list[Any]:
        return [m["seq"] for m in self._messages]  # the cursor is the seq itself

    def keepalive_signals(self) -> int:
        """An empty answer that came only once its timeout had passed."""
        return sum(1 for t in self.empty_answers if t >= self.poll_timeout * 0.9)

    def is_open(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.aclose()


TRANSPORTS: dict[str, type[Receiver]] = {
    "sse": SSEReceiver,
    "ws": WebSocketReceiver,
    "longpoll": LongPollReceiver,
}
ALL = list(TRANSPORTS)


def with_slow_client_case() -> list[Any]:
    """Every transport, the ones that cannot have a slow client skipped with their reason."""
    out = []
    for name, cls in TRANSPORTS.items():
        reason = cls.no_slow_client
        out.append(pytest.param(name, marks=pytest.mark.skip(reason=reason)) if reason else name)
    return out


# helpers -----------------------------------------------------------------------------------


def uniq(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@contextlib.asynccontextmanager
async def receiving(transport: str, server: Server, auth: Auth, room: str, **kw: Any) -> Any:
    rcv = TRANSPORTS[transport](server.url, auth, **kw)
    await rcv.open(room)
    try:
        yield rcv
    finally:
        await rcv.close()


async def post(http: httpx.AsyncClient, user: str, room: str, text: str, **extra: Any) -> Any:
    r = await http.post(
        "/chat/messages",
        headers={"User-ID": user},
        json={"room_id": room, "message": text, **extra},
    )
    assert r.status_code == 201, r.text
    return r.json()["message"]


async def settle(rcv: Receiver, n: int) -> list[dict[str, Any]]:
    """Wait for ``n`` messages, then a little longer: a duplicate or stray would show."""
    await rcv.wait_messages(n)
    await asyncio.sleep(0.3)
    return rcv.messages()


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, text, re.M)
    assert found is not None, f"{name}{labels} missing from /metrics"
    return float(found.group(1))


# (a) delivery ------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ALL)
async def test_delivery_is_the_stored_message_exactly(transport: str, trust_server: Server) -> None:
    room, sender = uniq("deliv"), uniq("sender")
    bodies: list[dict[str, Any]] = [
        {"message": "hello"},
        {"message": "two\nlines\r\n\ndata: injected\n\nid: 999\nevent: reset"},
        {"message": 'héllo 👋🏽 — ‘quotes’ <b>not html</b> & "json" \\ \u2028'},
        {"message": "  kept as sent  ", "timestamp": 1_700_000_000_123, "client_msg_id": "m-1"},
        {"message": "string timestamp", "timestamp": "2026-11-23T17:32:20.576Z"},
        {"message": "é" * 4000},
    ]
    async with client(trust_server.url) as http:
        async with receiving(transport, trust_server, trust(uniq("rcv")), room) as rcv:
            sent = [await post(http, sender, room, b.pop("message"), **b) for b in bodies]
            got = await settle(rcv, len(sent))
            assert got == sent  # the same JSON as the POST response, field for field
            assert rcv.ids() == [m["seq"] for m in sent]
            assert rcv.is_open()


# (b) ordering and exactly-once -------------------------------------------------------------


@pytest.mark.parametrize("transport", ALL)
async def test_concurrent_sends_arrive_once_in_seq_order(
    transport: str, trust_server: Server
) -> None:
    room = uniq("order")
    users = [uniq(f"u{i}") for i in range(10)]
    async with client(trust_server.url) as http:
        async with receiving(transport, trust_server, trust(uniq("rcv")), room) as rcv:
            sent = await asyncio.gather(
                *[post(http, users[i % 10], room, f"concurrent {i}") for i in range(100)]
            )
            got = await settle(rcv, 100)
    assert sorted(m["seq"] for m in sent) == list(range(1, 101))
    assert [m["seq"] for m in got] == list(range(1, 101))
    by_seq = {m["seq"]: m for m in sent}
    assert got == [by_seq[s] for s in range(1, 101)]


# (c) resume --------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ALL)
async def test_resume_delivers_exactly_what_was_missed(
    transport: str, trust_server: Server
) -> None:
    room, writer, reader = uniq("resume"), uniq("writer"), uniq("reader")
    cls = TRANSPORTS[transport]
    async with client(trust_server.url) as http:
        first = cls(trust_server.url, trust(reader))
        await first.open(room)
        sent = [await post(http, writer, room, f"before {i}") for i in range(10)]
        got = await first.wait_messages(10)
        last = got[-1]["seq"]
        await first.close()
        assert [m["seq"] for m in got] == list(range(1, 11))

        sent += [await post(http, writer, room, f"away {i}") for i in range(15)]

        async def during_reconnect() -> list[Any]:
            out = []
            for i in range(15):
                out.append(await post(http, writer, room, f"reconnecting {i}"))
                await asyncio.sleep(0.005)
            return out

        again = cls(trust_server.url, trust(reader))
        late = asyncio.create_task(during_reconnect())
        await again.open(room, after=last)
        sent += await late
        try:
            got = await settle(again, 30)
        finally:
            await again.close()
    assert [m["seq"] for m in got] == list(range(11, 41))
    assert got == sent[10:]


# (d) auth ----------------------------------------------------------------------------------


def _account(http: httpx.Client) -> tuple[str, str]:
    """(user id, access token) of a fresh account."""
    name, password = uniq("acct").replace("-", "_"), "correct horse battery"
    r = http.post("/auth/register", json={"username": name, "password": password})
    assert r.status_code == 201, r.text
    r = http.post("/auth/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["user"]["id"]), str(r.json()["access_token"])


@pytest.fixture(scope="module")
def jwt_room(jwt_server: Server) -> dict[str, Any]:
    """A public room with one message, its owner and a reader (both signed up)."""
    with httpx.Client(base_url=jwt_server.url, timeout=30) as http:
        owner_id, owner_token = _account(http)
        reader_id, reader_token = _account(http)
        auth = {"Authorization": f"Bearer {owner_token}"}
        r = http.post(
            "/chat/rooms", headers=auth, json={"name": uniq("auth"), "visibility": "public"}
        )
        assert r.status_code == 201, r.text
        room = r.json()["id"]
        r = http.post("/chat/messages", headers=auth, json={"room_id": room, "message": "hi all"})
        assert r.status_code == 201, r.text
    return {
        "room": room,
        "message": r.json()["message"],
        "owner_id": owner_id,
        "reader_id": reader_id,
        "reader_token": reader_token,
    }


@pytest.mark.parametrize("transport", ALL)
async def test_auth_is_enforced(
    transport: str, jwt_server: Server, jwt_room: dict[str, Any]
) -> None:
    cls = TRANSPORTS[transport]
    room, token = jwt_room["room"], jwt_room["reader_token"]

    async def attempt(auth: Auth) -> Receiver:
        rcv = cls(jwt_server.url, auth)
        await rcv.open(room, after=0)
        return rcv

    with pytest.raises(Refused) as refused:
        await attempt(anonymous())
    assert refused.value.status == cls.unauthenticated
    assert refused.value.code == "not_authenticated"

    with pytest.raises(Refused) as refused:
        await attempt(bearer(token, user_id=jwt_room["owner_id"]))
    assert refused.value.status == cls.forbidden
    assert refused.value.code == "user_mismatch"

    for auth in (
        bearer(token),
        bearer(token, user_id=jwt_room["reader_id"]),  # the seed's user_id, naming the caller
        tickets(jwt_server.url, token),
    ):
        rcv = await attempt(auth)
        try:
            assert await rcv.wait_messages(1) == [jwt_room["message"]]
        finally:
            await rcv.close()


# (e) slow client ---------------------------------------------------------------------------

MESSAGE_CHARS = 3990
MESSAGE_BYTES = MESSAGE_CHARS * 3  # "€" is 3 bytes of UTF-8
FLOOD_BYTES = 6 * 1024 * 1024  # more than the kernel can buffer for one socket


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("slow"),
        auth="trust",
        env={"HUBBUB_RATE_LIMIT_PER_SECOND": "0", "HUBBUB_STREAM_BUFFER_BYTES": "65536"},
    ).start()
    yield server
    server.stop()


@pytest.mark.parametrize("transport", with_slow_client_case())
async def test_a_client_that_stops_reading_is_cut_off_alone(
    transport: str, slow_server: Server
) -> None:
    cls = TRANSPORTS[transport]
    room = uniq("flood")
    count = FLOOD_BYTES // MESSAGE_BYTES + 1
    filler = "€" * (MESSAGE_CHARS - 10)
    async with client(slow_server.url) as http:
        before = metric((await http.get("/metrics")).text, "hubbub_slow_client_cutoffs_total")
        slow = cls.slow_reader(slow_server.port, room, uniq("slow"))
        try:
            async with receiving(transport, slow_server, trust(uniq("fast")), room) as fast:

                async def sender(worker: int) -> list[Any]:
                    return [
                        await post(http, f"w{worker}-{room}", room, f"{i:08d} {filler}")
                        for i in range(worker, count, 8)
                    ]

                batches = await asyncio.gather(*[sender(w) for w in range(8)])
                got = await fast.wait_messages(count, timeout=60)
                assert [m["seq"] for m in got] == list(range(1, count + 1))
                assert {m["id"] for m in got} == {m["id"] for b in batches for m in b}
                assert fast.is_open()
            after = metric((await http.get("/metrics")).text, "hubbub_slow_client_cutoffs_total")
            assert after >= before + 1, (before, after)

            # The never-reading client was cut off: draining its socket ends in EOF or a
            # reset (not a timeout), short of the end. What it does get is what the kernel's
            # send buffer (up to net.ipv4.tcp_wmem's max, 4 MiB) still held: a gap-free prefix.
            received = bytearray()
            slow.sock.settimeout(10)
            with contextlib.suppress(ConnectionResetError):
                while chunk := slow.sock.recv(65536):
                    received += chunk
            seqs = slow.seqs(bytes(received))
            print(f"{transport}: the slow reader got {len(received)} bytes, {len(seqs)}/{count}")
            assert seqs == list(range(1, len(seqs) + 1))
            assert len(seqs) < count, "the slow reader was sent everything: never cut off"
        finally:
            slow.sock.close()


# (f) keep-alive ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keepalive_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("keepalive"),
        auth="trust",
        args=["--ping-interval", "0.3"],
        # An unanswered WebSocket ping would end the connection after 1 s: staying open for
        # longer proves the client's pongs count.
        env={"HUBBUB_WS_PING_INTERVAL": "0.3", "HUBBUB_WS_PING_TIMEOUT": "1.0"},
    ).start()
    yield server
    server.stop()


KEEPALIVE_OPTIONS: dict[str, dict[str, Any]] = {"longpoll": {"poll_timeout": 0.5}}


@pytest.mark.parametrize("transport", ALL)
async def test_an_idle_connection_is_kept_alive(transport: str, keepalive_server: Server) -> None:
    room = uniq("idle")
    async with client(keepalive_server.url) as http:
        async with receiving(
            transport,
            keepalive_server,
            trust(uniq("idler")),
            room,
            **KEEPALIVE_OPTIONS.get(transport, {}),
        ) as rcv:
            await asyncio.sleep(2.3)
            signals = rcv.keepalive_signals()
            print(f"{transport}: {signals} keep-alive signals in 2.3 s of idleness")
            assert rcv.is_open(), rcv.failure
            assert signals >= 3, signals
            assert rcv.messages() == []
            sent = await post(http, uniq("late"), room, "still there?")
            assert await rcv.wait_messages(1) == [sent]


# raw WebSocket -----------------------------------------------------------------------------


def ws_client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One masked client frame (FIN set)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def parse_ws_frames(buf: bytes, limit: int | None = None) -> tuple[list[tuple[int, bytes]], int]:
    """Complete server frames at the start of ``buf`` (at most ``limit``), and how many bytes
    they took."""
    frames: list[tuple[int, bytes]] = []
    i = 0
    while i + 2 <= len(buf) and (limit is None or len(frames) < limit):
        opcode, size, j = buf[i] & 0x0F, buf[i + 1] & 0x7F, i + 2
        if size == 126:
            if j + 2 > len(buf):
                break
            size, j = int.from_bytes(buf[j : j + 2], "big"), j + 2
        elif size == 127:
            if j + 8 > len(buf):
                break
            size, j = int.from_bytes(buf[j : j + 8], "big"), j + 8
        if buf[i + 1] & 0x80:
            j += 4  # a masked frame (servers never mask)
        if j + size > len(buf):
            break
        frames.append((opcode, buf[j : j + size]))
        i = j + size
    return frames, i


class RawWebSocket:
    """A WebSocket client by hand, to do what a well-behaved library never would: stop reading,
    or never answer a ping."""

    def __init__(self, sock: socket.socket, leftover: bytes) -> None:
        self.sock = sock
        self.buf = leftover

    @classmethod
    def connect(
        cls, port: int, path: str, *, rcvbuf: int | None = None, host: str = "127.0.0.1"
    ) -> RawWebSocket:
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(10)
        sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            got = sock.recv(4096)
            assert got, data
            data += got
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(sock, rest)

    def send_json(self, obj: Any) -> None:
        self.sock.sendall(ws_client_frame(json.dumps(obj).encode()))

    def read_frame(self) -> tuple[int, bytes]:
        """The next frame, whatever it is (blocking; answers nothing by itself)."""
        while True:
            frames, used = parse_ws_frames(self.buf, limit=1)
            if frames:
                self.buf = self.buf[used:]
                return frames[0]
            got = self.sock.recv(65536)
            if not got:
                raise ConnectionError("closed by the server")
            self.buf += got

    def send_frame(self, payload: bytes, opcode: int) -> None:
        self.sock.sendall(ws_client_frame(payload, opcode))

    def close(self) -> None:
        self.sock.close()
