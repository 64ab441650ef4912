"""The presence interface.

Rules for implementers:

* A user is ``online`` while at least one of their connections is open (any transport), or
  ``away`` if they said so while connected; ``offline`` otherwise.
* Going offline waits ``grace`` seconds after the last connection closes; a connection opened
  within the grace keeps the user online with no change reported (a reconnect does not flap).
* ``on_change(user_id, status)`` is called exactly once per effective change, on the loop.
* ``connect``/``disconnect`` are counted per connection id; disconnecting an unknown id is a
  no-op. The store is never touched: presence lives in memory (or Redis), never in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Literal, Protocol

Status = Literal["online", "away", "offline"]
PresenceCallback = Callable[[str, Status], Coroutine[Any, Any, None]]


class Presence(Protocol):
    async def start(self, on_change: PresenceCallback) -> None: ...
    async def close(self) -> None: ...
    async def connect(self, user_id: str, conn_id: str) -> None: ...
    async def disconnect(self, user_id: str, conn_id: str) -> None: ...
    async def set_status(self, user_id: str, status: Literal["online", "away"]) -> Status: ...
    async def statuses(self, user_ids: Iterable[str]) -> dict[str, Status]: ...
