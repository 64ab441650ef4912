"""Shared helpers for the backend contract tests (broker, presence, typing, rate limits).

Every test runs once per backend (``@each_backend`` gives it ``kind``: ``memory`` or
``redis``). Redis runs for real, never mocked, under a unique key/channel prefix per test, and
two instances on one prefix act as two nodes. Timers of presence and typing run on a
:class:`ManualClock` where the rule under test is a local timer, so a 10-second grace is
checked without waiting; rules that rest on a Redis TTL use short real durations.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import REDIS_URL, redis_available

KINDS = ["memory", "redis"]
each_backend = pytest.mark.parametrize("kind", KINDS)
redis_only = pytest.mark.parametrize("kind", ["redis"])


def url_for(kind: str) -> str:
    """The backend URL for ``kind``; skips (or fails under CI) when Redis is missing."""
    if kind == "redis":
        redis_available()
        return REDIS_URL
    return "memory://"


def unique_prefix() -> str:
    """A key/channel prefix no other test (or other run sharing this Redis) uses."""
    return f"hubbub-contract:{secrets.token_hex(6)}:"


class _Timer:
    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A :class:`hubbub.clock.Clock` that stands still until ``advance`` moves it."""

    def __init__(self) -> None:
        self._now = 1000.0
        self._seq = itertools.count()
        self._due: list[tuple[float, int, _Timer]] = []

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> _Timer:
        timer = _Timer(self._now + max(0.0, delay), callback, args)
        heapq.heappush(self._due, (timer.when, next(self._seq), timer))
        return timer

    def pending(self) -> int:
        return sum(1 for _, _, t in self._due if not t.cancelled)

    async def advance(self, seconds: float) -> None:
        """Move time on, running every callback that falls due in order (callbacks may
        schedule more), then let the tasks they started run."""
        until = self._now + seconds
        while self._due and self._due[0][0] <= until:
            when, _, timer = heapq.heappop(self._due)
            self._now = when
            if not timer.cancelled:
                timer.callback(*timer.args)
        self._now = until
        await settle()


async def settle() -> None:
    """Let ready tasks (an announcer woken by a queue, a task a timer started) run to their
    next wait. Enough for memory backends; Redis round trips need :func:`eventually`."""
    for _ in range(20):
        await asyncio.sleep(0)


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``check()`` holds, polling every 10 ms; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.01)
