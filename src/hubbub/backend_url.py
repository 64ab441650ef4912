"""Which backend a ``--broker`` URL names, decided here once for every part that shares state.

The broker, presence, typing and the rate limits all follow ``settings.broker``. Each used to
read the URL its own way, and they disagreed (a ``unix://`` Redis got a Redis broker but limits
counted per node, so a user could multiply their limit by switching nodes). Now each factory
asks :func:`backend_of` and gets the same answer.

Redis is imported only when a connection is opened, so the core (which imports the protocols
and their factories) stays free of a Redis client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import redis.asyncio as aioredis

Backend = Literal["memory", "redis"]

_SCHEMES: dict[str, Backend] = {
    "memory": "memory",
    "redis": "redis",
    "rediss": "redis",
    "unix": "redis",
}


def backend_of(url: str) -> Backend:
    """``memory`` for one process, ``redis`` for state shared by every node; anything else is a
    configuration mistake worth stopping for, not a silent fallback to one node."""
    scheme = url.split("://", 1)[0]
    try:
        return _SCHEMES[scheme]
    except KeyError:
        raise ValueError(
            f"unknown broker URL scheme {scheme!r} (known: memory://, redis://)"
        ) from None


def limits_storage_uri(url: str) -> str:
    """The same Redis in the ``limits`` library's spelling (``async+redis://``,
    ``async+rediss://``, ``async+redis+unix://``)."""
    if backend_of(url) != "redis":
        raise ValueError(f"not a Redis URL: {url!r}")
    if url.startswith("unix://"):
        return "async+redis+" + url
    return "async+" + url


def connect(url: str, *, retries: int = 2) -> aioredis.Redis:
    """One way to open Redis for every Redis-backed part.

    Connections go stale when Redis restarts; without retries the first command on each pooled
    connection fails. A short retry on connection errors makes the first publish after a restart
    go through instead of being lost until the next resync. A pub/sub reader wants
    ``retries=0``: a silent reconnect would hide that messages were lost meanwhile.
    """
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=3,
        socket_timeout=5,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def namespace(channel_prefix: str) -> str:
    """Key prefix for presence, typing and limits: separate deployments that share one Redis
    (and choose different channel prefixes) must not share each other's state."""
    return "hubbub:" if channel_prefix == "chat:room:" else f"{channel_prefix}hubbub:"
