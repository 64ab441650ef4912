"""The Presence contract (``hubbub.presence.base``), against memory and a real Redis.

Graces run on a :class:`ManualClock`; only the dead-node rule (a Redis-side expiry) waits for
real, with a TTL of a fraction of a second. Redis announces a user's current status when it gets
to them, so a test lets a change be announced before making the next one (a grace of seconds
gives a real announcer that time); without that, changes may fold together (see ``base.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from hubbub.presence.base import Presence, Status, open_presence
from tests.contract.backends import (
    ManualClock,
    each_backend,
    eventually,
    redis_only,
    unique_prefix,
    url_for,
)

GRACE = 10.0


class Node:
    def __init__(self, presence: Presence) -> None:
        self.presence = presence
        self.changes: list[tuple[str, Status]] = []

    async def on_change(self, user_id: str, status: Status) -> None:
        self.changes.append((user_id, status))

    async def flush(self) -> None:
        """Wait until every change noticed so far is announced (or dropped): announcements go
        out in order, so once a fresh marker user's is out, everything before it is too."""
        marker = f"marker-{secrets.token_hex(4)}"
        await self.presence.connect(marker, "m")
        await eventually(lambda: (marker, "online") in self.changes)
        self.changes.remove((marker, "online"))


@asynccontextmanager
async def nodes(
    kind: str, count: int = 1, *, clock: ManualClock | None = None, ttl: float = 30.0
) -> AsyncIterator[list[Node]]:
    """``count`` presences on one key prefix (with Redis: ``count`` nodes sharing it)."""
    url = url_for(kind)
    prefix = unique_prefix()
    started: list[Node] = []
    try:
        for _ in range(count):
            node = Node(open_presence(url, grace=GRACE, ttl=ttl, prefix=prefix, clock=clock))
            await node.presence.start(node.on_change)
            started.append(node)
        yield started
    finally:
        for node in started:
            await node.presence.close()


def everything(*of: Node) -> list[tuple[str, Status]]:
    return [c for node in of for c in node.changes]


@each_backend
async def test_online_at_first_connect_then_silent_for_more_connections(kind: str) -> None:
    async with nodes(kind, clock=ManualClock()) as [node]:
        p = node.presence
        await p.connect("u", "c1")
        await eventually(lambda: node.changes == [("u", "online")])
        await p.connect("u", "c2")
        await p.connect("u", "c2")  # the same connection twice counts once
        await p.disconnect("u", "c2")
        await node.flush()
        assert node.changes == [("u", "online")]
        assert await p.statuses(["u"]) == {"u": "online"}


@each_backend
async def test_offline_only_after_the_grace(kind: str) -> None:
    clock = ManualClock()
    async with nodes(kind, clock=clock) as [node]:
        p = node.presence
        await p.connect("u", "c1")
        await p.connect("u", "c2")
        await p.disconnect("u", "c1")
        await p.disconnect("u", "c2")
        await clock.advance(GRACE - 0.5)
        await node.flush()
        assert node.changes == [("u", "online")]
        assert await p.statuses(["u"]) == {"u": "online"}  # still within the grace

        await clock.advance(1.0)
        await eventually(lambda: node.changes == [("u", "online"), ("u", "offline")])
        assert await p.statuses(["u"]) == {"u": "offline"}
        await clock.advance(GRACE * 3)
        await node.flush()
        assert node.changes == [("u", "online"), ("u", "offline")]


@each_backend
async def test_a_connection_closed_at_once_is_still_online_for_the_grace(kind: str) -> None:
    clock = ManualClock()
    async with nodes(kind, clock=clock) as [node]:
        await node.presence.connect("u", "c1")
        await node.presence.disconnect("u", "c1")
        await node.flush()
        assert node.changes == [("u", "online")]
        await clock.advance(GRACE + 1)
        await eventually(lambda: node.changes == [("u", "online"), ("u", "offline")])


@each_backend
async def test_a_reconnect_within_the_grace_does_not_flap(kind: str) -> None:
    clock = ManualClock()
    async with nodes(kind, clock=clock) as [node]:
        p = node.presence
        for n in range(5):
            await p.connect("u", f"c{n}")
            await p.disconnect("u", f"c{n}")
            await clock.advance(GRACE / 2)
        await p.connect("u", "last")
        await clock.advance(GRACE * 3)
        await node.flush()
        assert node.changes == [("u", "online")]
        assert await p.statuses(["u"]) == {"u": "online"}


@each_backend
async def test_disconnecting_an_unknown_connection_is_a_no_op(kind: str) -> None:
    clock = ManualClock()
    async with nodes(kind, clock=clock) as [node]:
        p = node.presence
        await p.disconnect("nobody", "c1")
        await p.connect("u", "c1")
        await p.disconnect("u", "other")
        await clock.advance(GRACE * 2)
        await node.flush()
        assert node.changes == [("u", "online")]
        assert await p.statuses(["u", "nobody"]) == {"u": "online", "nobody": "offline"}


@each_backend
async def test_away_is_announced_once_sticks_across_reconnects_and_ends_offline(
    kind: str,
) -> None:
    clock = ManualClock()
    async with nodes(kind, clock=clock) as [node]:
        p = node.presence
        await p.connect("u", "c1")
        await eventually(lambda: node.changes == [("u", "online")])
        assert await p.set_status("u", "away") == "away"
        assert await p.set_status("u", "away") == "away"
        await eventually(lambda: node.changes == [("u", "online"), ("u", "away")])
        assert await p.statuses(["u"]) == {"u": "away"}

        await p.disconnect("u", "c1")
        await clock.advance(GRACE / 2)
        await p.connect("u", "c2")
        await node.flush()
        assert await p.statuses(["u"]) == {"u": "away"}
        assert node.changes == [("u", "online"), ("u", "away")]

        assert await p.set_status("u", "online") == "online"
        await eventually(lambda: node.changes[-1] == ("u", "online"))
        await p.disconnect("u", "c2")
        await clock.advance(GRACE + 1)
        await eventually(lambda: node.changes[-1] == ("u", "offline"))
        assert node.changes == [("u", "online"), ("u", "away"), ("u", "online"), ("u", "offline")]


@each_backend
async def test_away_while_offline_stays_offline(kind: str) -> None:
    async with nodes(kind, clock=ManualClock()) as [node]:
        assert await node.presence.set_status("ghost", "away") == "offline"
        await node.flush()
        assert node.changes == []
        assert await node.presence.statuses(["ghost"]) == {"ghost": "offline"}


@each_backend
async def test_statuses_answers_every_asked_user(kind: str) -> None:
    async with nodes(kind, clock=ManualClock()) as [node]:
        p = node.presence
        await p.connect("a", "1")
        await p.connect("b", "2")
        await p.set_status("b", "away")
        assert await p.statuses([]) == {}
        assert await p.statuses(["a", "b", "c"]) == {"a": "online", "b": "away", "c": "offline"}
        assert await p.statuses(iter(["c"])) == {"c": "offline"}


@each_backend
async def test_users_are_independent(kind: str) -> None:
    clock = ManualClock()
    async with nodes(kind, clock=clock) as [node]:
        p = node.presence
        await p.connect("a", "1")
        await p.connect("b", "2")
        await node.flush()
        await p.disconnect("a", "1")
        await clock.advance(GRACE + 1)
        await eventually(lambda: ("a", "offline") in node.changes)
        await node.flush()
        assert sorted(node.changes) == [("a", "offline"), ("a", "online"), ("b", "online")]
        assert await p.statuses(["a", "b"]) == {"a": "offline", "b": "online"}


@redis_only
async def test_two_nodes_agree_and_announce_each_change_once(kind: str) -> None:
    clock = ManualClock()
    async with nodes(kind, 2, clock=clock) as [a, b]:
        await a.presence.connect("u", "on-a")
        await eventually(lambda: everything(a, b) == [("u", "online")])
        assert await b.presence.statuses(["u"]) == {"u": "online"}

        await b.presence.connect("u", "on-b")
        await a.presence.disconnect("u", "on-a")
        await clock.advance(GRACE + 1)
        await a.flush()
        await b.flush()
        assert everything(a, b) == [("u", "online")]  # still connected on b
        assert await a.presence.statuses(["u"]) == {"u": "online"}

        await b.presence.set_status("u", "away")
        await eventually(lambda: everything(a, b) == [("u", "online"), ("u", "away")])
        assert await a.presence.statuses(["u"]) == {"u": "away"}

        await b.presence.disconnect("u", "on-b")
        await clock.advance(GRACE + 1)
        await eventually(lambda: everything(a, b)[-1:] == [("u", "offline")])
        await a.flush()
        await b.flush()
        assert everything(a, b) == [("u", "online"), ("u", "away"), ("u", "offline")]
        assert await a.presence.statuses(["u"]) == {"u": "offline"}


@redis_only
async def test_a_dead_nodes_users_go_offline_once_their_ttl_passes(kind: str) -> None:
    ttl = 0.6  # real seconds: the expiry lives in Redis
    async with nodes(kind, 2, ttl=ttl) as [dying, survivor]:
        await dying.presence.connect("u", "c1")
        await eventually(lambda: everything(dying, survivor) == [("u", "online")])
        await dying.presence.close()  # stops renewing without disconnecting, like a crash
        assert await survivor.presence.statuses(["u"]) == {"u": "online"}
        await eventually(lambda: survivor.changes == [("u", "offline")], timeout=ttl * 5)
        assert await survivor.presence.statuses(["u"]) == {"u": "offline"}
        assert dying.changes == [("u", "online")] or survivor.changes[0] == ("u", "online")


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown broker URL scheme 'nats'"):
        open_presence("nats://localhost")
