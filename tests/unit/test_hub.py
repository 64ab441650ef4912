"""The hub on its own: an in-memory broker, a dict as the store, and fake sockets.

What is checked is what a client would see on its socket: which bytes, in which writes, and
whether the socket was closed or aborted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest

from hubbub.broker.memory import MemoryBroker
from hubbub.encoding import LAST_CHUNK, Event, chunk
from hubbub.hub import CONTROL, WS_REVOKED, Connection, ConnectionKind, Hub
from hubbub.models import personal_channel


class FakeSocket:
    """A transport and its flow control in one: writes are recorded; past ``bound`` buffered
    bytes (a client that stopped reading) writing is paused, as asyncio's high-water mark."""

    def __init__(self, bound: int | None = None) -> None:
        self.writes: list[bytes] = []
        self.bound = bound
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        if self.aborted:
            raise RuntimeError("transport gone")
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    @property
    def write_paused(self) -> bool:
        return self.bound is not None and sum(map(len, self.writes)) > self.bound

    async def drain(self) -> None:
        return None

    @property
    def received(self) -> bytes:
        return b"".join(self.writes)


class Store:
    """The rooms' logs; the hub reads heads and holes from here."""

    def __init__(self) -> None:
        self.logs: dict[str, list[Event]] = {}
        self.gap_reads: list[tuple[str, int, int]] = []

    def add(self, event: Event) -> Event:
        self.logs.setdefault(event.room_id, []).append(event)
        return event

    async def head(self, room_id: str) -> int:
        return max((e.rev or 0 for e in self.logs.get(room_id, [])), default=0)

    async def gap(self, room_id: str, after: int, before: int) -> list[Event]:
        self.gap_reads.append((room_id, after, before))
        return [e for e in self.logs.get(room_id, []) if e.rev and after < e.rev < before]


def message(room_id: str, rev: int, position: int | None = None) -> Event:
    data = b'{"room_id":"%s","seq":%d}' % (room_id.encode(), rev)
    return Event(room_id, "message", data, seq=rev, position=position, rev=rev)


class Setup:
    def __init__(self) -> None:
        self.broker = MemoryBroker()
        self.store = Store()
        self.cutoffs = 0
        self.hub = Hub(
            self.broker,
            self.store.head,
            self.store.gap,
            ping_interval=3600,
            on_cutoff=self._cut,
        )

    def _cut(self) -> None:
        self.cutoffs += 1

    async def connect(
        self,
        user_id: str,
        *rooms: str,
        kind: ConnectionKind = ConnectionKind.SSE,
        session_id: str | None = None,
        bound: int | None = None,
    ) -> tuple[Connection, FakeSocket]:
        sock = FakeSocket(bound)
        conn = Connection(sock, sock, user_id, kind, session_id)
        for room_id in rooms:
            await self.hub.attach(conn, room_id, replaying=False)
        return conn, sock

    async def publish(self, *events: Event) -> None:
        """All in one loop tick, then let the tick's flush run."""
        for event in events:
            await self.broker.publish(event)
        await asyncio.sleep(0)


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    s = Setup()
    await s.hub.start()
    yield s
    s.hub.close_all()


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def sse(*events: Event) -> bytes:
    return chunk(b"".join(e.sse for e in events))


async def test_a_rooms_events_arrive_in_rev_order(setup: Setup) -> None:
    _, sock = await setup.connect("alice", "r")
    one, two, three = message("r", 1), message("r", 2), message("r", 3)
    await setup.publish(one)
    await setup.publish(three)  # early: held until two arrives
    assert sock.writes == [sse(one)]
    await setup.publish(two)
    assert sock.writes == [sse(one), sse(two, three)]


async def test_one_tick_is_one_write_per_connection(setup: Setup) -> None:
    _, a = await setup.connect("alice", "r")
    _, b = await setup.connect("bob", "r", kind=ConnectionKind.WS)
    events = [message("r", 1), message("r", 2), message("r", 3)]
    await setup.publish(*events)
    assert a.writes == [sse(*events)]
    assert b.writes == [b"".join(e.ws for e in events)]


async def test_the_same_bytes_object_goes_to_every_connection(setup: Setup) -> None:
    socks = [
        (await setup.connect(f"u{i}", "r", kind=kind))[1]
        for i, kind in enumerate(
            [
                ConnectionKind.SSE,
                ConnectionKind.SSE,
                ConnectionKind.SSE,
                ConnectionKind.WS,
                ConnectionKind.WS,
            ]
        )
    ]
    await setup.publish(message("r", 1), message("r", 2))
    sse_writes = [s.writes[0] for s in socks[:3]]
    ws_writes = [s.writes[0] for s in socks[3:]]
    assert all(w is sse_writes[0] for w in sse_writes)  # encoded once, shared
    assert all(w is ws_writes[0] for w in ws_writes)
    assert sse_writes[0] != ws_writes[0]


async def test_a_gap_is_read_back_from_the_store(setup: Setup) -> None:
    _, sock = await setup.connect("alice", "r")
    one, two, three = message("r", 1), setup.store.add(message("r", 2)), message("r", 3)
    await setup.publish(one)
    await setup.publish(three)  # two was stored but the broker lost it
    await until(lambda: len(sock.writes) == 2)
    assert setup.store.gap_reads == [("r", 1, 3)]
    assert sock.received == sse(one) + sse(two, three)


async def test_duplicate_and_stale_broker_events_are_dropped(setup: Setup) -> None:
    _, sock = await setup.connect("alice", "r")
    one, two = message("r", 1), message("r", 2)
    await setup.publish(one, two)
    await setup.publish(message("r", 2), message("r", 1))  # repeated by the broker
    await setup.publish(message("r", 2))
    assert sock.writes == [sse(one, two)]


async def test_a_client_that_stops_reading_is_cut_off(setup: Setup) -> None:
    _, slow = await setup.connect("slow", "r", bound=10)
    _, fast = await setup.connect("fast", "r")
    await setup.publish(message("r", 1))  # more than 10 bytes: past the slow one's bound
    assert slow.aborted and not fast.aborted
    assert setup.cutoffs == 1
    await setup.publish(message("r", 2))
    assert len(slow.writes) == 1
    assert len(fast.writes) == 2


async def test_a_member_who_leaves_stops_receiving_the_room(setup: Setup) -> None:
    _, alice = await setup.connect("alice", "r")
    _, bob = await setup.connect("bob", "r")
    _, bob_ws = await setup.connect("bob", "r", kind=ConnectionKind.WS)
    left = Event.stored("r", "member_left", b'{"user_id":"bob"}', position=2, rev=2)
    before, after = message("r", 1), message("r", 3)
    await setup.publish(before, left, after)
    # Everyone gets the events up to the leave; the rest goes to those still in the room.
    assert alice.received == sse(before, left) + sse(after)
    assert bob.received == sse(before, left) + LAST_CHUNK
    assert bob.closed
    assert bob_ws.received == b"".join(e.ws for e in (before, left))
    assert not bob_ws.is_closing()  # a WebSocket drops the room, not the socket
    await setup.publish(message("r", 4))
    assert bob_ws.received == b"".join(e.ws for e in (before, left))


async def test_ended_sessions_close_their_connections(setup: Setup) -> None:
    forgotten: list[list[str]] = []
    setup.hub.on_sessions_ended(forgotten.append)
    _, ended = await setup.connect("alice", "r", session_id="s1")
    ws, ended_ws = await setup.connect("alice", "r", kind=ConnectionKind.WS, session_id="s2")
    codes: list[int] = []
    ws.on_end = codes.append
    _, kept = await setup.connect("alice", "r", session_id="s3")
    _, other = await setup.connect("bob", "r", session_id="s1")
    info = {"user_id": "alice", "session_ids": ["s1", "s2"]}
    await setup.publish(Event(CONTROL, "sessions_ended", msgspec.json.encode(info)))
    assert forgotten == [["s1", "s2"]]
    assert ended.closed and ended.writes == [LAST_CHUNK]
    assert codes == [WS_REVOKED]
    assert not ended_ws.closed  # its on_end closes it
    assert not kept.is_closing() and not other.is_closing()


async def test_personal_events_reach_only_their_users_streams(setup: Setup) -> None:
    alice, bob = personal_channel("alice"), personal_channel("bob")
    _, alice_all = await setup.connect("alice", alice, "r", kind=ConnectionKind.EVENTS)
    _, alice_ws = await setup.connect("alice", alice, kind=ConnectionKind.WS)
    _, alice_room = await setup.connect("alice", "r")
    _, bob_all = await setup.connect("bob", bob, "r", kind=ConnectionKind.EVENTS)
    _, bob_ws = await setup.connect("bob", bob, kind=ConnectionKind.WS)
    heard: list[Event] = []
    setup.hub.on_personal(heard.append)
    added = Event.stored(alice, "room_added", b'{"id":"x"}', position=1, rev=None)
    await setup.publish(added)
    assert alice_all.writes == [chunk(added.sse_all)]
    assert alice_ws.writes == [added.ws]
    assert heard == [added]
    assert not alice_room.writes and not bob_all.writes and not bob_ws.writes


async def test_chat_events_streams_get_positions_in_order(setup: Setup) -> None:
    _, sock = await setup.connect(
        "alice", personal_channel("alice"), "r", "s", kind=ConnectionKind.EVENTS
    )
    first, second, third = (
        message("r", 1, position=1),
        message("s", 1, position=2),
        message("r", 2, position=3),
    )
    await setup.publish(second)  # position 1 not here yet: held
    await setup.publish(first, third)
    assert sock.received == chunk(b"".join(e.sse_all for e in (first, second, third)))
