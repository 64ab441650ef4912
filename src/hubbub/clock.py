"""Time, as presence and typing see it: injected so their rules can be tested without sleeping.

Grace periods and typing expiry are timers on the event loop. Behind a :class:`Clock` a test can
swap the loop for a clock it advances by hand (``tests/contract/backends.py``), and check "offline
only after the grace" in microseconds rather than by waiting the grace out. Anything whose
deadline lives in Redis (key TTLs, heartbeat scores) stays on real time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol


class Handle(Protocol):
    """A scheduled callback; cancelling one that already ran (or was cancelled) is a no-op."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds: only differences mean anything."""
        ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Handle:
        """Run ``callback(*args)`` on the loop's thread once ``delay`` seconds have passed."""
        ...


class LoopClock:
    """The running event loop's clock, looked up at each call so a backend may be built before
    the loop runs (the runtime builds everything in ``__init__``)."""

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Handle:
        return asyncio.get_running_loop().call_later(delay, callback, *args)
