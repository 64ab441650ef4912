"""Holes in the order, filled from the store.

The broker may drop, repeat or reorder events; the sequencers (:mod:`hubbub.subscription`)
notice and hold what came early. This module reads the missing part back: a room's gap by
its ``rev``, a gap in stream positions for the ``/chat/events`` streams, and a periodic
resync that catches what a broker dropped without anything arriving after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hubbub.encoding import Event
from hubbub.hub.connection import Connection
from hubbub.hub.room import RoomState
from hubbub.models import is_personal
from hubbub.subscription import PositionSequencer

log = logging.getLogger("hubbub.hub")

HeadsFn = Callable[[list[str]], Awaitable[dict[str, int]]]
GapFn = Callable[[str, int, int], Awaitable[list[Event]]]
# (after, through, room ids): the stored entries of those rooms with positions in the range.
PositionsFn = Callable[[int, int, list[str]], Awaitable[list[Event]]]

REPAIR_DELAY = 0.05
MAX_HELD_POSITIONS = 50_000


class Repair:
    """Reads back what the sequencers are missing and releases it through the hub."""

    def __init__(
        self,
        rooms: dict[str, RoomState],
        positions: PositionSequencer,
        gap: GapFn,
        positions_read: PositionsFn | None,
        *,
        release: Callable[[RoomState, Event], None],
        release_positioned: Callable[[list[Event]], None],
        position_streams: set[Connection],
    ) -> None:
        self._rooms = rooms
        self._positions = positions
        self._gap = gap
        self._positions_read = positions_read
        self._release = release
        self._release_positioned = release_positioned
        self._position_streams = position_streams
        self.settling = False
        self._tasks: set[asyncio.Task[None]] = set()

    # a room's gap ------------------------------------------------------------------------

    def schedule(self, room_id: str, room: RoomState) -> None:
        """``room`` holds events past a gap: give the broker a moment, then read the store."""
        if room.repair is None:
            room.repair = asyncio.get_running_loop().call_later(REPAIR_DELAY, self._start, room_id)

    def _start(self, room_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is None:
            return
        room.repair = asyncio.get_running_loop().create_task(self._repair(room_id, room))

    async def _repair(self, room_id: str, room: RoomState) -> None:
        try:
            while (hole := room.sequencer.missing()) is not None:
                after, before = hole
                found = await self._gap(room_id, after, before)
                for e in room.sequencer.fill(found):
                    self._release(room, e)
                if not found:
                    # Not committed yet (a concurrent writer elsewhere): look again shortly.
                    await asyncio.sleep(REPAIR_DELAY)
        except Exception:
            log.exception("gap repair of room %s failed; retrying", room_id)
            room.repair = None
            if self._rooms.get(room_id) is room:
                room.repair = asyncio.get_running_loop().call_later(1.0, self._start, room_id)
            return
        room.repair = None

    # stream positions --------------------------------------------------------------------

    def settle_positions(self) -> None:
        self.settling = True
        task = asyncio.get_running_loop().create_task(self._settle())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self) -> None:
        """An event came past a gap in stream positions: ask the store what the gap holds
        for the rooms followed here, and pass everything on in order. Every position below a
        published one is committed (positions are taken from one counter row), so one read
        settles the gap for good."""
        positions = self._positions
        try:
            failures = 0
            while (gap := positions.missing()) is not None and self._positions_read:
                after, through = gap
                followed = [r for r, room in self._rooms.items() if room.all]
                try:
                    stored = await self._positions_read(after, through, followed)
                except Exception as exc:
                    failures += 1
                    held = len(positions.held)
                    log.warning("reading stream positions %d-%d failed: %s", after, through, exc)
                    if held > MAX_HELD_POSITIONS or failures > 20:
                        # Held too long: cut the /chat/events streams (they resume from the
                        # store, losing nothing) rather than hold memory without bound.
                        positions.rebase(max(positions.held))
                        for conn in list(self._position_streams):
                            conn.abort()
                        return
                    await asyncio.sleep(min(2.0, 0.1 * failures))
                    continue
                ready = positions.fill(through, stored)
                if ready:
                    self._release_positioned(ready)
        finally:
            self.settling = False

    # resync ------------------------------------------------------------------------------

    async def resync(self, heads: HeadsFn) -> int:
        """Compare every room's head in the store with what this node delivered and read the
        difference: after a broker reconnect, and periodically, so nothing a broker dropped
        stays missing. Returns how many events were recovered."""
        rooms = {
            r: room
            for r, room in self._rooms.items()
            if not is_personal(r) and room.ready.done() and room.sequencer.head is not None
        }
        if not rooms:
            return 0
        recovered = 0
        stored = await heads(list(rooms))
        for room_id, room in rooms.items():
            while (
                room.sequencer.head is not None
                and stored.get(room_id, 0) > room.sequencer.head
                and self._rooms.get(room_id) is room
            ):
                found = await self._gap(room_id, room.sequencer.head, stored[room_id] + 1)
                if not found:
                    break
                for e in room.sequencer.fill(found):
                    self._release(room, e)
                    recovered += 1
        if recovered:
            log.info("resync recovered %d events the broker did not deliver", recovered)
        return recovered
