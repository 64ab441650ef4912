"""One way to open Redis, for every Redis-backed part (broker, presence, typing, limits).

Connections go stale when Redis restarts; without retries the first command on each pooled
connection fails. A short retry on connection errors makes the first publish after a restart
go through instead of being lost until the next resync.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def connect(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=3,
        socket_timeout=5,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def namespace(channel_prefix: str) -> str:
    """Key prefix for presence, typing and limits: separate deployments that share one Redis
    (and choose different channel prefixes) must not share each other's state."""
    return "hubbub:" if channel_prefix == "chat:room:" else f"{channel_prefix}hubbub:"
