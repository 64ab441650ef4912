"""The Typing contract (``hubbub.typing.base``), against memory and a real Redis.

Memory expiries run on a :class:`ManualClock`. Redis ends an indicator through a key TTL, which
stays real, so its expiry tests use an expiry of a fraction of a second and real waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from hubbub.typing.base import Typing, open_typing
from tests.contract.backends import (
    ManualClock,
    each_backend,
    eventually,
    redis_only,
    settle,
    unique_prefix,
    url_for,
)

EXPIRY = 0.4

Change = tuple[str, str, str, bool]


class Node:
    def __init__(self, typing: Typing) -> None:
        self.typing = typing
        self.changes: list[Change] = []

    async def on_change(self, room_id: str, user_id: str, username: str, on: bool) -> None:
        self.changes.append((room_id, user_id, username, on))


class Time:
    """The clock a test moves: manual for memory, the real one for Redis (its TTLs are real)."""

    def __init__(self, kind: str) -> None:
        self.manual = ManualClock() if kind == "memory" else None

    async def pass_(self, seconds: float) -> None:
        if self.manual is not None:
            await self.manual.advance(seconds)
        else:
            await asyncio.sleep(seconds)


@asynccontextmanager
async def nodes(
    kind: str, count: int = 1, *, time: Time | None = None, expiry: float = EXPIRY
) -> AsyncIterator[list[Node]]:
    url = url_for(kind)
    prefix = unique_prefix()
    clock = time.manual if time is not None else None
    started: list[Node] = []
    try:
        for _ in range(count):
            node = Node(open_typing(url, expiry=expiry, prefix=prefix, clock=clock))
            await node.typing.start(node.on_change)
            started.append(node)
        yield started
    finally:
        for node in started:
            await node.typing.close()


ON = ("r", "u", "Ursula", True)
OFF = ("r", "u", "Ursula", False)


@each_backend
async def test_true_is_announced_once_and_renewals_are_silent(kind: str) -> None:
    async with nodes(kind, time=Time(kind), expiry=30.0) as [node]:
        t = node.typing
        assert await t.set("r", "u", "Ursula", True) is True
        assert node.changes == [ON]  # announced before set returns
        for _ in range(5):
            assert await t.set("r", "u", "Ursula", True) is False
        assert node.changes == [ON]
        assert t.active("r", "u")


@each_backend
async def test_explicit_false_is_announced_once(kind: str) -> None:
    async with nodes(kind, time=Time(kind), expiry=30.0) as [node]:
        t = node.typing
        assert await t.set("r", "u", "Ursula", False) is False  # was not typing: silent
        await t.set("r", "u", "Ursula", True)
        assert await t.set("r", "u", "Ursula", False) is True
        assert await t.set("r", "u", "Ursula", False) is False
        assert node.changes == [ON, OFF]
        assert not t.active("r", "u")
        assert await t.set("r", "u", "Ursula", True) is True  # a new indicator
        assert node.changes == [ON, OFF, ON]


@each_backend
async def test_false_is_announced_once_after_the_expiry_and_renewals_push_it_back(
    kind: str,
) -> None:
    time = Time(kind)
    async with nodes(kind, time=time) as [node]:
        t = node.typing
        await t.set("r", "u", "Ursula", True)
        for _ in range(3):  # renewed before each expiry: stays on past 3 expiries' worth
            await time.pass_(EXPIRY * 0.6)
            await t.set("r", "u", "Ursula", True)
        assert node.changes == [ON]
        assert t.active("r", "u")

        await time.pass_(EXPIRY * 1.5)
        await eventually(lambda: node.changes == [ON, OFF])
        assert not t.active("r", "u")
        await time.pass_(EXPIRY * 2)
        await settle()
        assert node.changes == [ON, OFF]
        assert await t.set("r", "u", "Ursula", False) is False  # already ended


@each_backend
async def test_rooms_and_users_are_independent(kind: str) -> None:
    async with nodes(kind, time=Time(kind), expiry=30.0) as [node]:
        t = node.typing
        await t.set("r1", "u", "Ursula", True)
        await t.set("r2", "u", "Ursula", True)
        await t.set("r1", "v", "Vera", True)
        await t.set("r1", "u", "Ursula", False)
        assert node.changes == [
            ("r1", "u", "Ursula", True),
            ("r2", "u", "Ursula", True),
            ("r1", "v", "Vera", True),
            ("r1", "u", "Ursula", False),
        ]
        assert not t.active("r1", "u")
        assert t.active("r2", "u")
        assert t.active("r1", "v")


@each_backend
async def test_close_cancels_pending_expiries(kind: str) -> None:
    time = Time(kind)
    async with nodes(kind, time=time) as [node]:
        await node.typing.set("r", "u", "Ursula", True)
        await node.typing.close()
        await time.pass_(EXPIRY * 2)
        await settle()
        assert node.changes == [ON]


@redis_only
async def test_two_nodes_announce_each_change_once(kind: str) -> None:
    async with nodes(kind, 2, expiry=30.0) as [a, b]:
        assert await a.typing.set("r", "u", "Ursula", True) is True
        assert await b.typing.set("r", "u", "Ursula", True) is False  # a renewal, from b
        assert await b.typing.set("r", "u", "Ursula", False) is True
        assert await a.typing.set("r", "u", "Ursula", False) is False
        assert a.changes == [ON]
        assert b.changes == [OFF]


@redis_only
async def test_expiry_across_nodes_is_announced_once(kind: str) -> None:
    async with nodes(kind, 2) as [a, b]:
        await a.typing.set("r", "u", "Ursula", True)
        await asyncio.sleep(EXPIRY * 0.6)
        await b.typing.set("r", "u", "Ursula", True)  # a's check finds it renewed
        await asyncio.sleep(EXPIRY * 0.6)
        assert a.changes + b.changes == [ON]
        await eventually(lambda: len(a.changes + b.changes) == 2)
        await asyncio.sleep(EXPIRY)  # both nodes' checks have run by now
        assert sorted(a.changes + b.changes) == [OFF, ON]


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown broker URL scheme"):
        open_typing("kafka://x")
