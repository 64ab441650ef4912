"""Local fan-out: one hub per process, room → the connections listening on this node.

Delivery is the hot path, so it is built for it (see ``docs/architecture.md``):

* no task per subscriber and no ``await`` per delivery: the events of one room that arrive in
  one loop tick are joined, wrapped in one HTTP chunk, and the same bytes are written straight
  into every live connection's transport in one loop;
* each connection's transport has a write-buffer high-water mark; a connection that passes it
  (a client that stopped reading) is aborted right there, so it never delays the others and
  never holds more than its bound. It loses nothing: it resumes from the store by ``seq``;
* keep-alive pings come from one timer for the whole hub.

Ordering and exactly-once are the :class:`~hubbub.subscription.RoomSequencer`'s job; holes it
finds are read back from the store here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from hubbub.broker.base import Broker
from hubbub.encoding import LAST_CHUNK, PING_CHUNK, Event, chunk
from hubbub.models import Message
from hubbub.subscription import RoomSequencer

log = logging.getLogger("hubbub.hub")

HeadFn = Callable[[str], Awaitable[int]]
GapFn = Callable[[str, int, int], Awaitable[list[Message]]]
DeliveryObserver = Callable[[int, float], None]

REPAIR_DELAY = 0.05
MAX_PENDING = 10_000


class FlowState(Protocol):
    write_paused: bool

    async def drain(self) -> None: ...


class TransportLike(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...


class Connection:
    """One open stream. ``pending`` is a list while the stream replays history, else ``None``."""

    __slots__ = ("flow", "kind", "pending", "rooms", "transport", "user_id", "write")

    def __init__(
        self, transport: TransportLike, flow: FlowState, user_id: str, kind: str = "sse"
    ) -> None:
        self.transport = transport
        self.write = transport.write
        self.flow = flow
        self.user_id = user_id
        self.kind = kind
        self.pending: list[Event] | None = None
        self.rooms: list[str] = []

    def send_frames(self, frames: bytes) -> None:
        """Write SSE frames outside the fan-out (connect, replay); same chunking as the hub."""
        if not self.transport.is_closing():
            self.write(chunk(frames))

    def close(self) -> None:
        """End the HTTP response cleanly so the client reconnects (shutdown, membership loss)."""
        if not self.transport.is_closing():
            self.write(LAST_CHUNK)
            self.transport.close()

    def abort(self) -> None:
        self.transport.abort()


class _Room:
    __slots__ = ("batch", "listeners", "ready", "repair", "replaying", "sequencer")

    def __init__(self) -> None:
        self.listeners: set[Connection] = set()
        self.replaying: set[Connection] = set()
        self.sequencer = RoomSequencer()
        self.batch: list[Event] = []
        self.repair: asyncio.TimerHandle | asyncio.Task[None] | None = None
        self.ready = asyncio.get_running_loop().create_future()


class Hub:
    def __init__(
        self,
        broker: Broker,
        head: HeadFn,
        gap: GapFn,
        *,
        ping_interval: float = 15.0,
        on_delivered: DeliveryObserver | None = None,
        on_cutoff: Callable[[], None] | None = None,
    ) -> None:
        self._broker = broker
        self._head = head
        self._gap = gap
        self._rooms: dict[str, _Room] = {}
        self._dirty: list[_Room] = []
        self._flush_scheduled = False
        self._ping_interval = ping_interval
        self._ping_handle: asyncio.TimerHandle | None = None
        self._on_delivered = on_delivered
        self._on_cutoff = on_cutoff
        self.connections: set[Connection] = set()
        self.closing = False

    # lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self._broker.start(self.dispatch)
        self._schedule_ping()

    def close_all(self) -> None:
        """Shutdown: refuse new streams and end every open one so clients reconnect elsewhere."""
        self.closing = True
        if self._ping_handle is not None:
            self._ping_handle.cancel()
        for conn in list(self.connections):
            conn.close()

    # attaching ---------------------------------------------------------------------------

    async def attach(self, conn: Connection, room_id: str, *, replaying: bool) -> None:
        """Start receiving ``room_id``'s events; while ``replaying`` they queue in ``pending``."""
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = _Room()
            try:
                await self._broker.subscribe(room_id)
                for event in room.sequencer.start(await self._head(room_id)):
                    self._enqueue(room, event)
            except BaseException as exc:
                if not room.ready.done():
                    room.ready.set_exception(exc)
                    room.ready.exception()
                if self._rooms.get(room_id) is room and not room.listeners and not room.replaying:
                    del self._rooms[room_id]
                raise
            room.ready.set_result(None)
        else:
            await asyncio.shield(room.ready)
        self.connections.add(conn)
        conn.rooms.append(room_id)
        if replaying:
            conn.pending = []
            room.replaying.add(conn)
        else:
            room.listeners.add(conn)

    def go_live(self, conn: Connection, room_id: str) -> list[Event]:
        """Finish a replay: returns what queued meanwhile; from now on the hub writes directly."""
        room = self._rooms[room_id]
        pending = conn.pending or []
        conn.pending = None
        room.replaying.discard(conn)
        room.listeners.add(conn)
        return pending

    async def detach(self, conn: Connection) -> None:
        self.connections.discard(conn)
        for room_id in conn.rooms:
            room = self._rooms.get(room_id)
            if room is None:
                continue
            room.listeners.discard(conn)
            room.replaying.discard(conn)
            if not room.listeners and not room.replaying and room.ready.done():
                del self._rooms[room_id]
                if isinstance(room.repair, asyncio.TimerHandle | asyncio.Task):
                    room.repair.cancel()
                await self._broker.unsubscribe(room_id)
        conn.rooms.clear()

    def listeners(self, room_id: str) -> int:
        room = self._rooms.get(room_id)
        return 0 if room is None else len(room.listeners) + len(room.replaying)

    # delivery ----------------------------------------------------------------------------

    def dispatch(self, event: Event) -> None:
        """Called by the broker for every event of a room this node listens to."""
        room = self._rooms.get(event.room_id)
        if room is None:
            return
        ready = room.sequencer.accept(event)
        for e in ready:
            self._enqueue(room, e)
        if room.sequencer.held and room.repair is None:
            room.repair = asyncio.get_running_loop().call_later(
                REPAIR_DELAY, self._start_repair, event.room_id
            )

    def _enqueue(self, room: _Room, event: Event) -> None:
        if not room.batch:
            self._dirty.append(room)
        room.batch.append(event)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        now = time.monotonic()
        for room in dirty:
            batch, room.batch = room.batch, []
            if room.listeners:
                shared = chunk(b"".join([e.sse for e in batch]))
                personal = any(e.exclude is not None for e in batch)
                slow: list[Connection] | None = None
                for conn in room.listeners:
                    data = shared
                    if personal:  # rare (typing): this tick's frames minus the user's own
                        frames = [e.sse for e in batch if e.exclude != conn.user_id]
                        if not frames:
                            continue
                        data = chunk(b"".join(frames))
                    try:
                        conn.write(data)
                    except RuntimeError:  # transport already gone; its task detaches it
                        continue
                    if conn.flow.write_paused:
                        if slow is None:
                            slow = []
                        slow.append(conn)
                if slow:
                    for conn in slow:
                        log.info("cutting off slow %s stream of %s", conn.kind, conn.user_id)
                        room.listeners.discard(conn)
                        conn.abort()
                        if self._on_cutoff is not None:
                            self._on_cutoff()
                if self._on_delivered is not None:
                    self._on_delivered(len(room.listeners) * len(batch), now - batch[0].born)
            for conn in room.replaying:
                pending = conn.pending
                if pending is not None:
                    pending.extend(batch)
                    if len(pending) > MAX_PENDING:
                        conn.abort()

    # gap repair --------------------------------------------------------------------------

    def _start_repair(self, room_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is None:
            return
        room.repair = asyncio.get_running_loop().create_task(self._repair(room_id, room))

    async def _repair(self, room_id: str, room: _Room) -> None:
        try:
            while (hole := room.sequencer.missing()) is not None:
                after, before = hole
                messages = await self._gap(room_id, after, before)
                found = [Event.message(m) for m in messages]
                for e in room.sequencer.fill(found):
                    self._enqueue(room, e)
                if not found:
                    # Not committed yet (a concurrent writer elsewhere): look again shortly.
                    await asyncio.sleep(REPAIR_DELAY)
        except Exception:
            log.exception("gap repair of room %s failed; retrying", room_id)
            room.repair = None
            if self._rooms.get(room_id) is room:
                room.repair = asyncio.get_running_loop().call_later(
                    1.0, self._start_repair, room_id
                )
            return
        room.repair = None

    # keep-alive --------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        self._ping_handle = asyncio.get_running_loop().call_later(self._ping_interval, self._ping)

    def _ping(self) -> None:
        for conn in self.connections:
            if conn.pending is None:
                try:
                    conn.write(PING_CHUNK)
                except RuntimeError:
                    continue
                if conn.flow.write_paused:
                    conn.abort()
        self._schedule_ping()
