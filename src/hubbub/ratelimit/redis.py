"""Limits shared by every node, in Redis, through ``limits``' own Redis storage.

The windows live under ``key_prefix`` (derived from the broker prefix, so deployments sharing
one Redis do not share limits). When Redis cannot be reached the limiter counts in this process
instead: a user gets at most one node's worth of sends per node until Redis is back, which beats
refusing every send, or failing every sign-in, while it is away.
"""

from __future__ import annotations

import logging

from limits import RateLimitItem, WindowStats
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from redis.exceptions import RedisError

from hubbub.backend_url import limits_storage_uri
from hubbub.ratelimit.memory import MemoryFailureLimiter, MemorySendLimiter

log = logging.getLogger("hubbub.ratelimit")


def _shared(url: str, key_prefix: str) -> MovingWindowRateLimiter:
    storage: Storage = storage_from_string(  # type: ignore[assignment]
        limits_storage_uri(url), implementation="redispy", key_prefix=key_prefix
    )
    return MovingWindowRateLimiter(storage)


class RedisSendLimiter(MemorySendLimiter):
    def __init__(
        self, url: str, per_second: float, burst: int, *, key_prefix: str = "hubbub:limits"
    ) -> None:
        super().__init__(per_second, burst)
        self._shared = _shared(url, key_prefix)

    async def check(self, user_id: str) -> None:
        if not self.enabled:
            return
        try:
            refused = await self._count(self._shared, user_id)
        except (RedisError, OSError) as exc:
            log.warning("shared rate limit unavailable (%s); limiting on this node", exc)
            refused = await self._count(self._local, user_id)
        if refused is not None:
            self._refuse(refused)


class RedisFailureLimiter(MemoryFailureLimiter):
    def __init__(
        self,
        url: str,
        per_name: int,
        per_address: int,
        window: int,
        *,
        key_prefix: str = "hubbub:limits",
    ) -> None:
        super().__init__(per_name, per_address, window)
        self._shared = _shared(url, key_prefix)

    async def _stats(self, item: RateLimitItem, *keys: str) -> WindowStats:
        try:
            return await self._shared.get_window_stats(item, *keys)
        except (RedisError, OSError):
            return await super()._stats(item, *keys)

    async def _hit(self, item: RateLimitItem, *keys: str) -> bool:
        try:
            return await self._shared.hit(item, *keys)
        except (RedisError, OSError) as exc:
            log.warning("shared sign-in limit unavailable (%s); limiting on this node", exc)
            return await super()._hit(item, *keys)
