"""Per-user send limits with the ``limits`` library.

The seed's limiter is a token bucket of 10/s with a burst of 20. ``limits`` offers windows, so
we express it as a moving window of ``burst`` sends per ``burst / rate`` seconds: a quiet user
can send ``burst`` at once, a sustained sender gets ``rate`` per second on average.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from redis.exceptions import RedisError

from hubbub.errors import RateLimited

log = logging.getLogger("hubbub.ratelimit")


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
        storage: Storage = MemoryStorage()
        if storage_url.startswith(("redis://", "rediss://")):
            # Shared by every node, so a user cannot multiply the limit by switching nodes.
            storage = storage_from_string(  # type: ignore[assignment]
                "async+" + storage_url, implementation="redispy", key_prefix=key_prefix
            )
        self._limiter = MovingWindowRateLimiter(storage)
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
