"""The broker: a doorbell between nodes, never the source of truth.

Every node hands each stored event to the broker; the broker rings every node that has a local
listener in the event's room. What a broker may get wrong is bounded by what the hub can repair:
it reads the store by ``seq`` for anything missing and drops anything already delivered. So a
backend must keep bytes and per-room order, and may lose, duplicate or delay.

Threading: every method is called on the event loop of the node that owns the broker, and
``on_event`` / the reconnect hook are called there too. Nothing here is thread-safe, and nothing
needs to be.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from hubbub.backend_url import backend_of
from hubbub.encoding import Event

EventCallback = Callable[[Event], None]
ReconnectHook = Callable[[], Awaitable[None]]


class Broker(Protocol):
    async def start(self, on_event: EventCallback) -> None:
        """Begin delivering to ``on_event``; call once, before any ``subscribe``.

        ``on_event`` is called on the loop, one event at a time, and must neither block nor
        raise: it is the hub's fan-out, and a slow one would hold every room on this node. (Redis
        logs an exception and goes on; memory calls it inside ``publish``, so it would reach
        the publisher.)
        Fails (raises) when the backend is unreachable at start: a node that cannot reach its
        broker should not come up silently alone.
        """
        ...

    async def close(self) -> None:
        """Stop delivering and release connections. Idempotent; nothing is called after it."""
        ...

    async def ping(self) -> None:
        """Raise when the backend is unreachable (the readiness probe asks)."""
        ...

    async def publish(self, event: Event) -> None:
        """Ring every node subscribed to ``event.room_id``, this node included.

        * Events published by one node to one room arrive, at every node, in publish order.
        * Bytes arrive unchanged (``Event.wire()`` in, the same event out).
        * An event may be lost (a Redis restart, a subscriber cut off), duplicated or delayed;
          the hub repairs from the store. No order is promised between rooms or between nodes.
        * Raises when the backend refuses the publish; the caller logs it and the periodic
          resync delivers the event later.
        """
        ...

    async def subscribe(self, room_id: str) -> None:
        """Start receiving ``room_id``'s events on this node.

        Per room and per node, not per connection: the hub calls it when a room gains its first
        local listener. Idempotent. Never raises for a backend that is momentarily down: the
        subscription is remembered and made when the backend is back.
        """
        ...

    async def unsubscribe(self, room_id: str) -> None:
        """Stop receiving ``room_id`` (its last local listener left). Idempotent; a few events
        already in flight may still arrive, and the hub ignores them."""
        ...

    def on_reconnect(self, hook: ReconnectHook) -> None:
        """Call ``hook`` each time the backend comes back after losing its connection, once the
        subscriptions are restored: whatever was published meanwhile is gone, and the hook (the
        hub's resync) reads it from the store. A later call replaces the hook; a hook that
        raises is logged and delivery goes on. A backend that cannot lose its connection
        (memory) never calls it.
        """
        ...


def open_broker(url: str, prefix: str = "chat:room:") -> Broker:
    """The backend ``url`` names (see :mod:`hubbub.backend_url`); each is imported only when
    used, so a one-process server never imports a Redis client for its broker."""
    if backend_of(url) == "memory":
        from hubbub.broker.memory import MemoryBroker

        return MemoryBroker()
    from hubbub.broker.redis import RedisBroker

    return RedisBroker(url, prefix=prefix)
