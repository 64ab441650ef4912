"""Presence: who is online, told to the rooms once per change, never stored in SQL.

A user is ``online`` while at least one of their connections is open (any transport, any
node), ``away`` if they said so while connected, ``offline`` otherwise. Clients reconnect all
the time (a phone changing networks, a long-poll between requests), so going offline waits a
grace period: a reconnect within it changes nothing and nobody hears about it.

Threading: every method is called on the event loop of the owning node; ``on_change`` is awaited
there, by one worker per instance, so one user's changes are announced in the order they
happened. Timers (the grace) run on the injected :class:`~hubbub.clock.Clock`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Literal, Protocol

from hubbub.backend_url import backend_of
from hubbub.clock import Clock

Status = Literal["online", "away", "offline"]
PresenceCallback = Callable[[str, Status], Coroutine[Any, Any, None]]


class Presence(Protocol):
    async def start(self, on_change: PresenceCallback) -> None:
        """Begin announcing to ``on_change(user_id, status)``: exactly once per effective change
        (across every node sharing the backend), never for a change that undoes itself within
        the grace. An exception raised by it is logged; the change is not retried.

        What is announced is the user's status when the announcer gets to them (Redis) or each
        transition (memory): changes made faster than they can be announced (a connect and an
        ``away`` in the same millisecond) may fold into one announcement of the final status,
        and a change undone before its announcement may announce nothing."""
        ...

    async def close(self) -> None:
        """Stop announcing and cancel pending graces. This node's connections are not removed
        from a shared backend: they expire there (``ttl``) like those of a node that died."""
        ...

    async def connect(self, user_id: str, conn_id: str) -> None:
        """A connection opened. The first one makes the user ``online`` (announced); one
        opened within the grace cancels the pending ``offline`` silently. ``conn_id`` must be
        unique per connection; connecting the same id twice counts once."""
        ...

    async def disconnect(self, user_id: str, conn_id: str) -> None:
        """A connection closed. When it was the user's last, ``offline`` is announced after the
        grace unless a connection opens meanwhile. Disconnecting an unknown (or already
        disconnected) id is a no-op."""
        ...

    async def set_status(self, user_id: str, status: Literal["online", "away"]) -> Status:
        """The user's choice; returns their effective status. ``away`` takes effect only while
        they are connected (an offline user stays ``offline``) and sticks across reconnects
        until they say ``online``."""
        ...

    async def statuses(self, user_ids: Iterable[str]) -> dict[str, Status]:
        """Every asked user's current status (a user in their grace is still online/away).
        With a shared backend unreachable, answers from what this node knows rather than
        raise: presence is live-only and best effort."""
        ...


def open_presence(
    url: str,
    *,
    grace: float = 10.0,
    ttl: float = 30.0,
    prefix: str = "hubbub:presence:",
    clock: Clock | None = None,
) -> Presence:
    """The backend ``url`` names (see :mod:`hubbub.backend_url`). ``ttl`` (how long a dead
    node's connections keep its users online) and ``prefix`` only matter to Redis."""
    if backend_of(url) == "memory":
        from hubbub.presence.memory import MemoryPresence

        return MemoryPresence(grace, clock=clock)
    from hubbub.presence.redis import RedisPresence

    return RedisPresence(url, grace=grace, ttl=ttl, prefix=prefix, clock=clock)
