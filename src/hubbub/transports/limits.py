"""How many streams one process takes on: per user, and being set up at once.

Two bounds, both per process (with N nodes a user can hold N times the per-user cap; a shared
count would cost a Redis round trip per connect, and the cap is there against runaway
clients, not as a quota):

* **per user** (``max_streams_per_user``): a client that leaks streams (a reconnect loop that
  never closes the old one, a script) would otherwise hold memory and file descriptors without
  bound; the next stream gets 429 ``too_many_streams``.
* **admission** (``max_pending_streams``): when a restart cuts thousands of streams at once,
  they all come back within a few seconds, and each one being set up (authentication, the
  replay from the store) holds a task, buffers and store reads. Past the bound a new stream
  is refused with 503 ``server_busy`` before any of that work: refusing costs a few
  microseconds, admitting costs milliseconds and memory. Every client is recovered anyway,
  because it comes back after ``Retry-After`` (jittered, so the refused do not return as one
  wave).

The ``retry:`` sent to SSE clients is jittered per connection for the same reason: after a
restart, browsers reconnect ``retry`` ms after losing the stream; a fixed value brings them
all back in the same instant.

Sans-I/O: :class:`~hubbub.transports.resume.StreamLife` takes and gives back the slots, so every
transport goes through here and every way a stream ends frees them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from hubbub.errors import RateLimited, Unavailable


class TooManyStreams(RateLimited):
    code = "too_many_streams"


class ServerBusy(Unavailable):
    code = "server_busy"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class StreamLimits:
    __slots__ = (
        "_on_refused",
        "_open",
        "_rng",
        "max_pending",
        "max_per_user",
        "pending",
        "retry_ms",
        "spread",
    )

    def __init__(
        self,
        max_per_user: int,
        max_pending: int,
        retry_ms: int,
        spread: float = 1.0,
        rng: random.Random | None = None,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self._on_refused = on_refused  # a 429 too_many_streams (the rate-limit metric)
        self.max_per_user = max_per_user
        self.max_pending = max_pending
        self.retry_ms = retry_ms
        self.spread = max(0.0, spread)
        self.pending = 0
        self._open: dict[str, int] = {}
        self._rng = rng or random.Random()

    def jittered_retry_ms(self) -> int:
        """Uniform in ``[retry_ms, retry_ms * (1 + spread))``: never sooner than configured."""
        width = int(self.retry_ms * self.spread)
        if width <= 0:
            return self.retry_ms
        return self.retry_ms + self._rng.randrange(width)

    def retry_after(self) -> int:
        """Whole seconds (what ``Retry-After`` allows), spread like ``retry:``: uniform over
        the whole seconds of ``[retry_ms, retry_ms * (1 + spread))``, at least 1."""
        low = max(1, math.ceil(self.retry_ms / 1000))
        high = math.ceil(self.retry_ms * (1 + self.spread) / 1000)
        return low + self._rng.randrange(high - low) if high > low else low

    def admit(self) -> None:
        """A stream starts being set up; :class:`ServerBusy` when too many already are."""
        if self.max_pending > 0 and self.pending >= self.max_pending:
            wait = self.retry_after()
            raise ServerBusy(
                f"too many streams are starting at once; retry in {wait} s", retry_after=wait
            )
        self.pending += 1

    def settled(self) -> None:
        """A stream admitted by :meth:`admit` is live (or gone)."""
        self.pending = max(0, self.pending - 1)

    def claim(self, user_id: str) -> None:
        """One more open stream for ``user_id``; :class:`TooManyStreams` past the cap."""
        held = self._open.get(user_id, 0)
        if self.max_per_user > 0 and held >= self.max_per_user:
            if self._on_refused is not None:
                self._on_refused()
            raise TooManyStreams(
                f"at most {self.max_per_user} open streams per user; close one first",
                retry_after=self.retry_after(),
            )
        self._open[user_id] = held + 1

    def release(self, user_id: str) -> None:
        held = self._open.get(user_id, 0) - 1
        if held > 0:
            self._open[user_id] = held
        else:
            self._open.pop(user_id, None)

    def held(self, user_id: str) -> int:
        return self._open.get(user_id, 0)

    @property
    def users(self) -> int:
        return len(self._open)
