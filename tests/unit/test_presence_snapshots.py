"""The presence snapshot a stream gets on connect (``transports/resume.PresenceSnapshots``),
built over a real hub, a real SQLite store and the in-memory Presence backend.

A connect storm into one room of N members must not ask the Presence backend for all N on
every connect (with Redis that was N² commands: 2 M for 1,000 people joining one room), and the
statuses it remembers must follow the presence changes that pass through the hub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import msgspec
import pytest

from hubbub.encoding import Event
from hubbub.hub import Connection, ConnectionKind
from hubbub.presence.base import Status
from hubbub.presence.memory import MemoryPresence
from hubbub.store.sql import SqlStore
from hubbub.transports.resume import PresenceSnapshots
from tests.unit.test_hub import FakeSocket, Setup

MEMBERS = 300
ONLINE = 150


class CountingPresence(MemoryPresence):
    """The real in-memory backend, counting the users it is asked about."""

    def __init__(self) -> None:
        super().__init__(grace=0.0)
        self.asked = 0
        self.calls = 0

    async def statuses(self, user_ids: Iterable[str]) -> dict[str, Status]:
        users = list(user_ids)
        self.asked += len(users)
        self.calls += 1
        await asyncio.sleep(0.001)  # a round trip: concurrent connects overlap it
        return await super().statuses(users)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Setup, SqlStore, CountingPresence]]:
    store = SqlStore(f"sqlite:///{tmp_path / 'snap.db'}")
    await store.start()
    await store.rooms.enter_rooms([("big", f"u{i}", f"u{i}") for i in range(MEMBERS)])
    presence = CountingPresence()
    await presence.start(lambda user, status: asyncio.sleep(0))
    for i in range(ONLINE):
        await presence.connect(f"u{i}", f"c{i}")
    setup = Setup()
    await setup.hub.start()
    try:
        yield setup, store, presence
    finally:
        setup.hub.close_all()
        await store.close()


def online_in(events: list[Event]) -> set[str]:
    return {
        str(msgspec.json.decode(e.data)["user_id"])
        for e in events
        if msgspec.json.decode(e.data)["status"] != "offline"
    }


async def test_a_connect_storm_asks_presence_about_each_member_about_once(
    world: tuple[Setup, SqlStore, CountingPresence],
) -> None:
    setup, store, presence = world
    snapshots = PresenceSnapshots(setup.hub, store, presence)
    sock = FakeSocket()
    await setup.hub.attach(Connection(sock, sock, "u0", ConnectionKind.SSE), "big", replaying=False)
    storm = await asyncio.gather(*[snapshots.of(["big"], per_room=True) for _ in range(200)])
    expected = {f"u{i}" for i in range(ONLINE)}
    assert all(online_in(events) == expected for events in storm)
    assert presence.asked <= 2 * MEMBERS, presence.asked  # not 200 × 300
    # a change passing through the hub is what the next snapshot says, without asking again
    asked = presence.asked
    gone = Event.named("big", "presence", {"user_id": "u1", "status": "offline"})
    await setup.publish(gone)
    await asyncio.sleep(0.05)
    later = await snapshots.of(["big"], per_room=True)
    assert online_in(later) == expected - {"u1"}
    assert presence.asked == asked


async def test_remembered_statuses_expire(
    world: tuple[Setup, SqlStore, CountingPresence],
) -> None:
    setup, store, presence = world
    snapshots = PresenceSnapshots(setup.hub, store, presence)
    snapshots.STATUS_TTL = 0.05
    first = await snapshots.of(["big"], per_room=True)
    assert "u200" not in online_in(first)
    await presence.connect("u200", "late")  # not announced through this hub
    await asyncio.sleep(0.1)
    assert "u200" in online_in(await snapshots.of(["big"], per_room=True))
