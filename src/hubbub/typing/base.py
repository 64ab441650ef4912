"""Typing indicators: never stored, throttled, and ended by themselves.

A client says "typing" on every keystroke (or every few seconds); the room must hear
``is_typing: true`` once, ``false`` once when the user stops, and nothing in between. So only
changes are announced: a renewal costs a timer reset (or one Redis round trip) and is silent.
An indicator the user never ends (a closed tab) ends by itself ``expiry`` seconds after the last
renewal, so nobody is left "typing" forever.

Threading: every method is called on the owning node's event loop; ``on_change`` is awaited
there. Timers run on the injected :class:`~hubbub.clock.Clock`; Redis's own key TTLs stay real.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from hubbub.backend_url import backend_of
from hubbub.clock import Clock

TypingCallback = Callable[[str, str, str, bool], Coroutine[Any, Any, None]]
"""``on_change(room_id, user_id, username, is_typing)``."""


class Typing(Protocol):
    async def start(self, on_change: TypingCallback) -> None:
        """Begin announcing to ``on_change``; changes before it are not announced."""
        ...

    async def close(self) -> None:
        """Cancel pending expiries and release connections. Indicators still on are not ended:
        with a shared backend, another node (or Redis's TTL) ends them."""
        ...

    async def set(self, room_id: str, user_id: str, username: str, is_typing: bool) -> bool:
        """Record the user's state; returns whether the room was told (only on a change).

        * ``true`` when not typing: announced ``true`` (awaited before returning), once across
          every node sharing the backend; the indicator lives ``expiry`` seconds.
        * ``true`` while typing: renews the expiry, silent.
        * ``false`` while typing: announced ``false`` once; ``false`` when not typing: silent.
        * No renewal for ``expiry`` seconds: ``false`` is announced once, by one node.
        Raises when a shared backend is unreachable (the caller decides what that means).
        """
        ...

    def active(self, room_id: str, user_id: str) -> bool:
        """Whether this node saw the user typing in the room and the indicator may still be on:
        a cheap local hint (sending a message ends the indicator only when it says so)."""
        ...


def open_typing(
    url: str,
    *,
    expiry: float = 5.0,
    prefix: str = "hubbub:typing:",
    clock: Clock | None = None,
) -> Typing:
    """The backend ``url`` names (see :mod:`hubbub.backend_url`); ``prefix`` only matters to
    Redis."""
    if backend_of(url) == "memory":
        from hubbub.typing.memory import MemoryTypingTracker

        return MemoryTypingTracker(expiry, clock=clock)
    from hubbub.typing.redis import RedisTypingTracker

    return RedisTypingTracker(url, expiry=expiry, prefix=prefix, clock=clock)
