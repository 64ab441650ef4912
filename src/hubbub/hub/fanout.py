"""Writing what the hub released into the connections: the hot path.

* no task per subscriber and no ``await`` per delivery: the events of one room that arrive in
  one loop tick are joined and framed once per connection kind (an SSE chunk, WebSocket
  frames), and the same bytes are written straight into every live connection's transport;
* each connection's transport has a write-buffer high-water mark; a connection that passes it
  (a client that stopped reading) is aborted right there, so it never delays the others and
  never holds more than its bound. It loses nothing: it resumes from the store;
* keep-alive pings come from one timer for the whole hub.

Access follows changes as they pass: a ``member_left`` ends that user's streams of the room
right after it, in the same tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from hubbub import tracing
from hubbub.encoding import PING_CHUNK, Event, chunk
from hubbub.hub.connection import WS_PING, Connection, ConnectionKind, frame_sse, frame_ws
from hubbub.hub.room import RoomState, left_user

log = logging.getLogger("hubbub.hub")

DeliveryObserver = Callable[[int, float], None]

MAX_PENDING = 10_000

# Bound once: the per-connection loops compare kinds by identity (an enum member looked up on
# its class, or hashed as a dict key, costs several times a plain string's).
_WS = ConnectionKind.WS
_POLL = ConnectionKind.POLL


class Fanout:
    """The connections of this node and the writes into them, one flush per loop tick."""

    def __init__(
        self,
        rooms: dict[str, RoomState],
        detach_room: Callable[[Connection, str], Coroutine[Any, Any, None]],
        *,
        ping_interval: float,
        on_delivered: DeliveryObserver | None,
        on_cutoff: Callable[[], None] | None,
    ) -> None:
        self._rooms = rooms
        self._detach_room = detach_room
        self._dirty: list[RoomState] = []
        # ``/chat/events`` streams' share of this tick, in the order they get it.
        self.tick: list[Event] = []
        self.tick_revoking = False  # a member_left was released this tick
        self._flush_scheduled = False
        self.connections: set[Connection] = set()
        self.all_conns: set[Connection] = set()
        self.ws_conns: set[Connection] = set()  # they get user-level events too
        self._ping_interval = ping_interval
        self._ping_handle: asyncio.TimerHandle | None = None
        self._on_delivered = on_delivered
        self._on_cutoff = on_cutoff
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, room: RoomState, event: Event) -> None:
        """``event`` is next in ``room``'s order: written at the end of this tick."""
        if not room.batch:
            self._dirty.append(room)
        room.batch.append(event)
        if event.name == "member_left":
            room.revoking = True
            self.tick_revoking = True
        if not self._flush_scheduled:  # schedule(), inlined: this runs for every event
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write this tick's events; also run before a replay hands off, so what was released
        but not yet written goes with the hand-off instead of straight to the connection."""
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        tick, self.tick = self.tick, []
        now = time.monotonic()
        for room in dirty:
            batch, room.batch = room.batch, []
            if room.revoking:
                room.revoking = False
                self._write_revoking(room, batch, now)
            else:
                self._write_segment(room, batch, now)
        if tick:
            revoking, self.tick_revoking = self.tick_revoking, False
            self._write_all(tick, revoking)
        for room in dirty:
            for conn, queued in list(room.replaying.items()):
                if len(queued) > MAX_PENDING:  # replaying slower than the room moves
                    self.cut_off(conn)

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def cut_off(self, conn: Connection) -> None:
        if conn.transport.is_closing():  # cut off already (a replay queue checked each tick)
            conn.abort()
            return
        log.info("cutting off slow %s stream of %s", conn.kind, conn.user_id)
        conn.abort()
        if self._on_cutoff is not None:
            self._on_cutoff()

    # rooms -------------------------------------------------------------------------------

    def _write_segment(self, room: RoomState, batch: list[Event], now: float) -> None:
        if room.listeners:
            if tracing.TRACER is None:
                self._write_room(room, batch, now)
            else:
                self._write_room_traced(room, batch, now)
        for conn, queued in room.replaying.items():
            queued.extend(batch)
            if conn.wake is not None:
                conn.wake()

    def _write_room_traced(self, room: RoomState, batch: list[Event], now: float) -> None:
        """One ``deliver`` span per room batch on this node (never per subscriber), when the
        batch holds a traced publish."""
        parent = next((e.trace for e in batch if e.trace is not None), None)
        if parent is None:
            self._write_room(room, batch, now)
            return
        first = batch[0]
        span = tracing.deliver(parent, first.room_id, len(batch), len(room.listeners) * len(batch))
        try:
            self._write_room(room, batch, now)
        finally:
            span.end()

    def _write_room(self, room: RoomState, batch: list[Event], now: float) -> None:
        sse_data: bytes | None = None
        ws_data: bytes | None = None
        personal = any(e.exclude is not None or e.exclude_user_streams is not None for e in batch)
        slow: list[Connection] | None = None
        for conn in room.listeners:
            if personal:  # rare (typing): this tick's events minus the user's own
                mine = [
                    e
                    for e in batch
                    if e.exclude != conn.user_id
                    and (conn.kind is not _WS or e.exclude_user_streams != conn.user_id)
                ]
                if not mine:
                    continue
                data = frame_ws(mine) if conn.kind is _WS else frame_sse(mine)
            elif conn.kind is _WS:
                data = ws_data if ws_data is not None else (ws_data := frame_ws(batch))
            else:
                data = sse_data if sse_data is not None else (sse_data := frame_sse(batch))
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
                room.listeners.discard(conn)
                self.cut_off(conn)
        if self._on_delivered is not None:
            self._on_delivered(len(room.listeners) * len(batch), now - batch[0].born)

    def _write_revoking(self, room: RoomState, batch: list[Event], now: float) -> None:
        """A batch with a ``member_left``: everyone gets the events up to it, then the user
        who left stops receiving the room (rare, so the slow way)."""
        start = 0
        for i, event in enumerate(batch):
            if event.name != "member_left":
                continue
            self._write_segment(room, batch[start : i + 1], now)
            start = i + 1
            user_id = left_user(event)
            if user_id is None:
                continue
            for conn in [c for c in (*room.listeners, *room.replaying) if c.user_id == user_id]:
                self._leave(conn, room, event.room_id)
        if start < len(batch):
            self._write_segment(room, batch[start:], now)

    def _leave(self, conn: Connection, room: RoomState, room_id: str) -> None:
        """``conn``'s user left ``room_id``: a room stream ends; a WebSocket drops the room
        (its ``room_removed`` comes on the personal channel); a long-poll is answered."""
        room.listeners.discard(conn)
        queued = room.replaying.pop(conn, None)
        if conn.kind is _POLL and queued is not None:
            room.replaying[conn] = queued  # answered with what it has; it detaches itself
            if conn.wake is not None:
                conn.wake()
            return
        if conn.kind is _WS:
            self._forget_room(conn, room_id)
            return
        log.info("%s stopped receiving room %s: left", conn.user_id, room_id)
        conn.close()

    def _forget_room(self, conn: Connection, room_id: str) -> None:
        conn.unfollow(room_id)
        task = asyncio.get_running_loop().create_task(self._detach_room(conn, room_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # /chat/events streams ----------------------------------------------------------------

    def _write_all(self, tick: list[Event], revoking: bool = False) -> None:
        """``/chat/events`` streams: the tick's events of their rooms, in position order
        (nothing at or below what a stream already has: its cursor only grows)."""
        for conn in list(self.all_conns):
            seen = conn.position
            if revoking:
                mine = [
                    e
                    for e in self._mine_until_left(conn, tick)
                    if e.position is None or e.position > seen or conn.pending is not None
                ]
            else:
                mine = [
                    e
                    for e in tick
                    if e.room_id in conn.room_set
                    and e.exclude != conn.user_id
                    and e.exclude_user_streams != conn.user_id
                    and (e.position is None or e.position > seen or conn.pending is not None)
                ]
            if mine:
                mine = _without_repeated_presence(conn, mine)
            if not mine:
                continue
            if conn.pending is not None:
                conn.pending.extend(mine)
                if len(conn.pending) > MAX_PENDING:
                    self.cut_off(conn)
                continue
            try:
                conn.write(chunk(b"".join([e.sse_all for e in mine])))
            except RuntimeError:
                continue
            for e in mine:
                if e.position is not None and e.position > conn.position:
                    conn.position = e.position
            if conn.flow.write_paused:
                self.all_conns.discard(conn)
                self.cut_off(conn)

    def _mine_until_left(self, conn: Connection, tick: list[Event]) -> list[Event]:
        out = []
        for e in tick:
            if (
                e.room_id not in conn.room_set
                or e.exclude == conn.user_id
                or e.exclude_user_streams == conn.user_id
            ):
                continue
            out.append(e)
            if e.name == "member_left" and left_user(e) == conn.user_id:
                room = self._rooms.get(e.room_id)
                if room is not None:
                    room.all.discard(conn)
                self._forget_room(conn, e.room_id)
        return out

    def announce(self, event: Event) -> None:
        """A user-level event for every ``/chat/events`` stream and WebSocket (a new room)."""
        for conn in [*self.all_conns, *self.ws_conns]:
            if conn.kind is ConnectionKind.EVENTS:
                if conn.pending is not None:
                    conn.pending.append(event)
                else:
                    conn.send_frames(event.sse_all)
            elif conn.kind is _WS:
                conn.send_frames(event.ws)

    # keep-alive --------------------------------------------------------------------------

    def start_pings(self) -> None:
        self._ping_handle = asyncio.get_running_loop().call_later(self._ping_interval, self._ping)

    def stop_pings(self) -> None:
        if self._ping_handle is not None:
            self._ping_handle.cancel()

    def _ping(self) -> None:
        for conn in self.connections:
            if conn.kind is _POLL:
                continue
            try:
                conn.write(WS_PING if conn.kind is _WS else PING_CHUNK)
            except RuntimeError:
                continue
            if conn.flow.write_paused:  # not reading even between events
                self.cut_off(conn)
        self.start_pings()


def _without_repeated_presence(conn: Connection, events: list[Event]) -> list[Event]:
    """A user's presence change reaches every room they are in; say it once per stream."""
    out = []
    for e in events:
        if e.name == "presence":
            seen = conn.last_presence
            if seen is None:
                seen = conn.last_presence = {}
            who = e.data.split(b'"status"', 1)[0]
            if seen.get(who) == e.data:
                continue
            seen[who] = e.data
        out.append(e)
    return out
