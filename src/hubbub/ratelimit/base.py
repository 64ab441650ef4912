"""Rate limits: sends per user, failed sign-ins per username and per client address.

Both are moving windows counted with the ``limits`` library. The seed's send limit is a token
bucket of 10/s with a burst of 20; ``limits`` offers windows, so it is expressed as ``burst``
sends per ``burst / rate`` seconds: a quiet user can send ``burst`` at once, a sustained sender
gets ``rate`` per second on average.

Rules for every backend:

* A refusal is :class:`~hubbub.errors.RateLimited` (HTTP 429) with ``retry_after`` >= 1 s, the
  time until the oldest counted hit leaves the window; nothing else is ever raised for a limit.
* Counts are per key (user, username, address): one key using its limit never affects another.
* A shared backend (Redis) counts across every node, so a user cannot multiply a limit by
  switching nodes. When it is unreachable, each node counts alone (a warning is logged) rather
  than refuse, or crash, every send and sign-in while Redis is away.
* Windows are measured in wall-clock seconds by ``limits`` (not by :mod:`hubbub.clock`): they
  live in Redis, where every node must read the same time.
* Called on the event loop; the failure limiter serializes its check-and-reserve with a lock,
  so concurrent attempts of one process see each other.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from hubbub.backend_url import backend_of


class SendLimiter(Protocol):
    async def check(self, user_id: str) -> None:
        """Count one send by ``user_id``, or raise ``RateLimited`` (uncounted) when the user
        has used up the window. A limiter built with a rate or burst of 0 never refuses."""
        ...


class FailureLimiter(Protocol):
    def attempt(self, name: str, address: str | None) -> AbstractAsyncContextManager[Attempt]:
        """Refuse with ``RateLimited`` (``code="too_many_attempts"``) before the attempt when
        ``name`` or ``address`` has used up its failures; otherwise run it. Only an attempt
        that calls ``failed()`` counts; while it runs it counts as a failure for concurrent
        checks (in this process), so a burst of parallel guesses is bounded too. A cap of 0
        disables that key; ``address=None`` skips the address cap."""
        ...


class Attempt:
    """The body of one sign-in attempt reports wrong credentials through this."""

    __slots__ = ("failures",)

    def __init__(self) -> None:
        self.failures = 0

    def failed(self) -> None:
        self.failures += 1


def open_send_limiter(
    url: str,
    per_second: float,
    burst: int,
    *,
    key_prefix: str = "hubbub:limits",
    on_refused: Callable[[], None] | None = None,
) -> SendLimiter:
    """The backend ``url`` names (see :mod:`hubbub.backend_url`); ``on_refused`` is called for
    each refusal (a send that passes costs nothing more)."""
    if backend_of(url) == "memory":
        from hubbub.ratelimit.memory import MemorySendLimiter

        limiter = MemorySendLimiter(per_second, burst)
    else:
        from hubbub.ratelimit.redis import RedisSendLimiter

        limiter = RedisSendLimiter(url, per_second, burst, key_prefix=key_prefix)
    limiter.on_refused = on_refused
    return limiter


def open_failure_limiter(
    url: str,
    per_name: int,
    per_address: int,
    window: int,
    *,
    key_prefix: str = "hubbub:limits",
) -> FailureLimiter:
    """The backend ``url`` names (see :mod:`hubbub.backend_url`)."""
    if backend_of(url) == "memory":
        from hubbub.ratelimit.memory import MemoryFailureLimiter

        return MemoryFailureLimiter(per_name, per_address, window)
    from hubbub.ratelimit.redis import RedisFailureLimiter

    return RedisFailureLimiter(url, per_name, per_address, window, key_prefix=key_prefix)
