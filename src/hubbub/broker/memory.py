"""In-process broker: one node, so publishing is handing the event to this node's hub."""

from __future__ import annotations

from hubbub.broker.base import EventCallback, ReconnectHook
from hubbub.encoding import Event


class MemoryBroker:
    """Delivery is a direct call, so nothing is ever lost or reordered and there is no
    connection to lose: the reconnect hook is accepted and never called."""

    def __init__(self) -> None:
        self._on_event: EventCallback | None = None
        self._rooms: set[str] = set()

    async def start(self, on_event: EventCallback) -> None:
        self._on_event = on_event

    async def close(self) -> None:
        self._on_event = None
        self._rooms.clear()

    async def ping(self) -> None:
        return None

    async def publish(self, event: Event) -> None:
        if self._on_event is not None and event.room_id in self._rooms:
            self._on_event(event)

    async def subscribe(self, room_id: str) -> None:
        self._rooms.add(room_id)

    async def unsubscribe(self, room_id: str) -> None:
        self._rooms.discard(room_id)

    def on_reconnect(self, hook: ReconnectHook) -> None:
        return None
