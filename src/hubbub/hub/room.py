"""What this node keeps per room it listens to: who listens, in which way, and the room's order."""

from __future__ import annotations

import asyncio

import msgspec

from hubbub.encoding import Event
from hubbub.hub.connection import Connection
from hubbub.subscription import RoomSequencer


def left_user(event: Event) -> str | None:
    """Who a ``member_left`` event is about (rare: decoding here costs nothing)."""
    try:
        return str(msgspec.json.decode(event.data)["user_id"])
    except (msgspec.DecodeError, KeyError, TypeError):
        return None


class RoomState:
    """One room on this node. Connections listen in one of three ways: ``listeners`` are
    written to directly, ``replaying`` queue what arrives until their replay hands off, and
    ``all`` (``/chat/events`` streams) get the room's events among their other rooms'."""

    __slots__ = (
        "all",
        "batch",
        "listeners",
        "ready",
        "repair",
        "replaying",
        "revoking",
        "sequencer",
        "waiters",
    )

    def __init__(self) -> None:
        self.listeners: set[Connection] = set()
        self.replaying: dict[Connection, list[Event]] = {}
        self.all: set[Connection] = set()
        self.sequencer = RoomSequencer()
        self.batch: list[Event] = []  # released this tick, not yet written
        self.repair: asyncio.TimerHandle | asyncio.Task[None] | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self.revoking = False  # the batch holds a member_left: split it there
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []  # Hub.caught_up()

    def empty(self) -> bool:
        return not self.listeners and not self.replaying and not self.all

    @property
    def head(self) -> int:
        return self.sequencer.head or 0

    def wake_waiters(self) -> None:
        """Release every :meth:`~hubbub.hub.Hub.caught_up` waiting for a rev now passed on."""
        head = self.head
        keep = []
        for rev, future in self.waiters:
            if future.done():
                continue
            if rev <= head:
                future.set_result(None)
            else:
                keep.append((rev, future))
        self.waiters = keep

    def stop_repair(self) -> None:
        if self.repair is not None:
            self.repair.cancel()
