"""The broker interface: a doorbell between nodes, never the source of truth.

Rules for implementers:

* ``publish`` hands an event to every node subscribed to its room (this node included), as
  soon as possible. Events published by one node to one room arrive in publish order.
* A backend *may* drop, duplicate or delay events (a Redis restart, a slow subscriber): the hub
  repairs gaps from the store by ``seq`` and drops what it has already delivered. A backend must
  never alter an event's bytes.
* ``subscribe``/``unsubscribe`` are per room and per node, not per connection: the hub calls them
  when a room gains its first / loses its last local listener.
* ``on_event`` is called on the event loop, one event at a time; it must not block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hubbub.encoding import Event

EventCallback = Callable[[Event], None]


class Broker(Protocol):
    async def start(self, on_event: EventCallback) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...
    async def publish(self, event: Event) -> None: ...
    async def subscribe(self, room_id: str) -> None: ...
    async def unsubscribe(self, room_id: str) -> None: ...


def open_broker(url: str, prefix: str = "chat:room:") -> Broker:
    """Pick a backend by the URL's scheme; each is imported only when used."""
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        from hubbub.broker.memory import MemoryBroker

        return MemoryBroker()
    if scheme in ("redis", "rediss", "unix"):
        from hubbub.broker.redis import RedisBroker

        return RedisBroker(url, prefix=prefix)
    raise ValueError(f"unknown broker URL scheme {scheme!r} (known: memory://, redis://)")
