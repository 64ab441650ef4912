"""Limits counted in this process (``memory://``), and the counting the Redis backend reuses.

The checks are written once, here, over a ``limits`` limiter; :mod:`hubbub.ratelimit.redis`
points them at a window in Redis and falls back to this process's window when Redis is
unreachable, so both backends refuse by the same rules with the same messages.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from limits import RateLimitItem, RateLimitItemPerSecond, WindowStats
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from hubbub.errors import RateLimited
from hubbub.ratelimit.base import Attempt


class MemorySendLimiter:
    def __init__(self, per_second: float, burst: int) -> None:
        window = max(1, round(burst / per_second)) if per_second > 0 else 1
        self._item = RateLimitItemPerSecond(burst, window)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self.enabled = per_second > 0 and burst > 0
        self.on_refused: Callable[[], None] | None = None  # each 429 (the rate-limit metric)

    async def check(self, user_id: str) -> None:
        if not self.enabled:
            return
        refused = await self._count(self._local, user_id)
        if refused is not None:
            self._refuse(refused)

    async def _count(self, limiter: MovingWindowRateLimiter, user_id: str) -> WindowStats | None:
        """Count one send; the window's state when it is full (and the send refused)."""
        if await limiter.hit(self._item, "send", user_id):
            return None
        return await limiter.get_window_stats(self._item, "send", user_id)

    def _refuse(self, stats: WindowStats) -> None:
        if self.on_refused is not None:
            self.on_refused()
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"too many messages: at most {self._item.amount} per "
            f"{self._item.multiples} s; retry in {retry_after} s",
            retry_after=retry_after,
        )


class MemoryFailureLimiter:
    """At most ``per_name`` failed sign-ins (login or register) per username and ``per_address``
    per client address in a ``window``: password guessing gets 429 after a few tries instead of
    an argon2 hash per guess. Only failures count, and the check comes before the hash, so a
    blocked guesser costs nothing; a correct login after the window works again."""

    def __init__(self, per_name: int, per_address: int, window: int) -> None:
        self._items: dict[str, RateLimitItem] = {}
        if per_name > 0:
            self._items["auth-name"] = RateLimitItemPerSecond(per_name, max(1, window))
        if per_address > 0:
            self._items["auth-address"] = RateLimitItemPerSecond(per_address, max(1, window))
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self._lock = asyncio.Lock()

    async def _hit(self, item: RateLimitItem, *keys: str) -> bool:
        return await self._local.hit(item, *keys)

    async def _stats(self, item: RateLimitItem, *keys: str) -> WindowStats:
        return await self._local.get_window_stats(item, *keys)

    def _keys(self, name: str, address: str | None) -> list[tuple[str, str]]:
        keys = []
        if "auth-name" in self._items:
            keys.append(("auth-name", name))
        if "auth-address" in self._items and address:
            keys.append(("auth-address", address))
        return keys

    async def _window(self, kind: str, key: str) -> tuple[int, float]:
        """(failures counted in the window, when the oldest of them expires)."""
        item = self._items[kind]
        stats = await self._stats(item, kind, key)
        return item.amount - stats.remaining, stats.reset_time

    @asynccontextmanager
    async def attempt(self, name: str, address: str | None) -> AsyncIterator[Attempt]:
        keys = self._keys(name, address)
        # The counts are read, checked and reserved (and, at the end, recorded and released)
        # under one lock: concurrent attempts always see each other, in flight or counted.
        async with self._lock:
            windows = [await self._window(kind, key) for kind, key in keys]
            for (kind, key), (used, reset_time) in zip(keys, windows, strict=True):
                item = self._items[kind]
                if used + self._in_flight[(kind, key)] >= item.amount:
                    retry_after = max(1, math.ceil(reset_time - time.time()))
                    what = "username" if kind == "auth-name" else "address"
                    raise RateLimited(
                        f"too many failed attempts for this {what}: at most {item.amount} per "
                        f"{item.multiples} s; retry in {retry_after} s",
                        retry_after=retry_after,
                        code="too_many_attempts",
                    )
            self._in_flight.update(keys)
        attempt = Attempt()
        try:
            yield attempt
        finally:
            async with self._lock:
                if attempt.failures:
                    for kind, key in keys:
                        await self._hit(self._items[kind], kind, key)
                self._in_flight.subtract(keys)
                for k in keys:
                    if self._in_flight[k] <= 0:
                        del self._in_flight[k]
