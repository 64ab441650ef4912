"""Per-user send limits and per-name/per-address limits on failed sign-ins, with ``limits``.

The seed's limiter is a token bucket of 10/s with a burst of 20. ``limits`` offers windows, so
we express it as a moving window of ``burst`` sends per ``burst / rate`` seconds: a quiet user
can send ``burst`` at once, a sustained sender gets ``rate`` per second on average.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from redis.exceptions import RedisError

from hubbub.errors import RateLimited

log = logging.getLogger("hubbub.ratelimit")


def _storage(url: str, key_prefix: str) -> Storage:
    if url.startswith(("redis://", "rediss://")):
        # Shared by every node, so a user cannot multiply a limit by switching nodes.
        return storage_from_string(  # type: ignore[return-value]
            "async+" + url, implementation="redispy", key_prefix=key_prefix
        )
    return MemoryStorage()


class SendLimiter:
    def __init__(
        self,
        per_second: float,
        burst: int,
        storage_url: str = "memory://",
        key_prefix: str = "hubbub:limits",
    ) -> None:
        window = max(1, round(burst / per_second)) if per_second > 0 else 1
        self._item = RateLimitItemPerSecond(burst, window)
        self._limiter = MovingWindowRateLimiter(_storage(storage_url, key_prefix))
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self.enabled = per_second > 0 and burst > 0

    async def check(self, user_id: str) -> None:
        if not self.enabled:
            return
        try:
            if await self._limiter.hit(self._item, "send", user_id):
                return
            stats = await self._limiter.get_window_stats(self._item, "send", user_id)
        except (RedisError, OSError) as exc:
            # The shared counter is unreachable: limit on this node alone rather than refuse
            # (or crash) every send while Redis is away.
            log.warning("shared rate limit unavailable (%s); limiting on this node", exc)
            if await self._local.hit(self._item, "send", user_id):
                return
            stats = await self._local.get_window_stats(self._item, "send", user_id)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"too many messages: at most {self._item.amount} per "
            f"{self._item.multiples} s; retry in {retry_after} s",
            retry_after=retry_after,
        )


class FailureLimiter:
    """At most ``per_name`` failed sign-ins (login or register) per username and ``per_address``
    per client address in a ``window``: password guessing gets 429 after a few tries instead of
    an argon2 hash per guess. Only failures count, and the check comes before the hash, so a
    blocked guesser costs nothing; a correct login after the window works again. Attempts still
    being hashed count as failures in the check, so a burst of concurrent guesses is bounded
    too (per process)."""

    def __init__(
        self,
        per_name: int,
        per_address: int,
        window: int,
        storage_url: str = "memory://",
        key_prefix: str = "hubbub:limits",
    ) -> None:
        self._items: dict[str, RateLimitItem] = {}
        if per_name > 0:
            self._items["auth-name"] = RateLimitItemPerSecond(per_name, max(1, window))
        if per_address > 0:
            self._items["auth-address"] = RateLimitItemPerSecond(per_address, max(1, window))
        self._limiter = MovingWindowRateLimiter(_storage(storage_url, key_prefix))
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self._lock = asyncio.Lock()

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
        try:
            stats = await self._limiter.get_window_stats(item, kind, key)
        except (RedisError, OSError):
            stats = await self._local.get_window_stats(item, kind, key)
        return item.amount - stats.remaining, stats.reset_time

    @asynccontextmanager
    async def attempt(self, name: str, address: str | None) -> AsyncIterator[Attempt]:
        """Refuse with 429 when ``name`` or ``address`` has used up its failures; otherwise
        run the attempt, which reports ``failed()`` when the credentials were wrong."""
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
                    await self._hit(keys)
                self._in_flight.subtract(keys)
                for k in keys:
                    if self._in_flight[k] <= 0:
                        del self._in_flight[k]

    async def _hit(self, keys: list[tuple[str, str]]) -> None:
        for kind, key in keys:
            item = self._items[kind]
            try:
                await self._limiter.hit(item, kind, key)
            except (RedisError, OSError) as exc:
                log.warning("shared sign-in limit unavailable (%s); limiting on this node", exc)
                await self._local.hit(item, kind, key)


class Attempt:
    __slots__ = ("failures",)

    def __init__(self) -> None:
        self.failures = 0

    def failed(self) -> None:
        self.failures += 1
