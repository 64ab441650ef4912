"""Local fan-out: one hub per process, room → the connections listening on this node.

Delivery is the hot path, so it is built for it (see ``docs/architecture.md``):

* no task per subscriber and no ``await`` per delivery: the events of one room that arrive in
  one loop tick are joined and framed once per connection kind (an SSE chunk, WebSocket
  frames), and the same bytes are written straight into every live connection's transport;
* each connection's transport has a write-buffer high-water mark; a connection that passes it
  (a client that stopped reading) is aborted right there, so it never delays the others and
  never holds more than its bound. It loses nothing: it resumes from the store;
* keep-alive pings come from one timer for the whole hub.

Connections come in kinds: ``sse`` and ``ws`` listen to rooms one by one (each room resumes by
its own ``seq``); ``all`` (``/chat/events``) listens to every room of its user plus the user's
personal channel and gets the tick's events in publish order, so its single cursor (the stream
position) only ever grows; ``poll`` (long-poll) only wants to be woken.

Ordering and exactly-once per room are the :class:`~hubbub.subscription.RoomSequencer`'s job
(by the room's ``rev``, which messages and stored changes share); holes it finds are read back
from the store here.

Access follows changes as they pass (see "Who receives what" in ``docs/api.md``): a
``member_left`` ends that user's streams of the room right after it in the same tick, and
``sessions_ended`` on the control channel (``@*``, every node listens) ends every stream opened
with those sessions. The control channel also carries ``room_created`` to every all-rooms and
WebSocket stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from hubbub.broker.base import Broker
from hubbub.encoding import LAST_CHUNK, PING_CHUNK, Event, chunk
from hubbub.models import personal_channel as personal_channel
from hubbub.subscription import PositionSequencer, RoomSequencer

log = logging.getLogger("hubbub.hub")

HeadFn = Callable[[str], Awaitable[int]]
HeadsFn = Callable[[list[str]], Awaitable[dict[str, int]]]
GapFn = Callable[[str, int, int], Awaitable[list[Event]]]
# (after, through, room ids): the stored entries of those rooms with positions in the range.
PositionsFn = Callable[[int, int, list[str]], Awaitable[list[Event]]]
DeliveryObserver = Callable[[int, float], None]

REPAIR_DELAY = 0.05
MAX_PENDING = 10_000
MAX_HELD_POSITIONS = 50_000
WS_PING = b"\x89\x00"
CONTROL = "@*"  # every node listens: session ends, new public rooms
WS_SERVICE_RESTART = 1012
WS_REVOKED = 4401


def left_user(event: Event) -> str | None:
    """Who a ``member_left`` event is about (rare: decoding here costs nothing)."""
    try:
        return str(msgspec.json.decode(event.data)["user_id"])
    except (msgspec.DecodeError, KeyError, TypeError):
        return None


class FlowState(Protocol):
    @property
    def write_paused(self) -> bool: ...

    async def drain(self) -> None: ...


class TransportLike(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...


def _sse(batch: list[Event]) -> bytes:
    return chunk(b"".join([e.sse for e in batch]))


def _ws(batch: list[Event]) -> bytes:
    return b"".join([e.ws for e in batch])


FRAMERS: dict[str, Callable[[list[Event]], bytes]] = {"sse": _sse, "ws": _ws}


class Connection:
    """One open stream. ``pending`` is a list while an ``all`` stream replays, else ``None``."""

    __slots__ = (
        "flow",
        "kind",
        "last_presence",
        "on_end",
        "pending",
        "position",
        "room_set",
        "rooms",
        "session_id",
        "transport",
        "user_id",
        "wake",
        "write",
    )

    def __init__(
        self,
        transport: TransportLike,
        flow: FlowState,
        user_id: str,
        kind: str = "sse",
        session_id: str | None = None,
    ) -> None:
        self.transport = transport
        self.write = transport.write
        self.flow = flow
        self.user_id = user_id
        self.session_id = session_id
        self.kind = kind
        self.pending: list[Event] | None = None
        self.position = 0  # ``all`` streams: the newest stream position written
        self.rooms: list[str] = []
        self.room_set: set[str] = set()
        self.last_presence: dict[bytes, bytes] | None = None
        # How a stream that is not plain SSE ends, given a WebSocket close code (1012 to
        # reconnect elsewhere, 4401 when its credentials were revoked).
        self.on_end: Callable[[int], None] | None = None
        self.wake: Callable[[], None] | None = None  # long-poll: something queued

    def send_frames(self, frames: bytes) -> None:
        """Write outside the fan-out (connect, replay), framed as this connection's kind."""
        if not self.transport.is_closing():
            self.write(frames if self.kind == "ws" else chunk(frames))

    def close(self, code: int = WS_SERVICE_RESTART) -> None:
        """End the stream cleanly: the response ends (SSE) or the socket closes with ``code``."""
        if self.on_end is not None:
            self.on_end(code)
        elif not self.transport.is_closing():
            self.write(LAST_CHUNK)
            self.transport.close()

    def abort(self) -> None:
        self.transport.abort()


class _Room:
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
        self.batch: list[Event] = []
        self.repair: asyncio.TimerHandle | asyncio.Task[None] | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self.revoking = False  # the batch holds a member_left: split it there
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []  # caught_up()

    def empty(self) -> bool:
        return not self.listeners and not self.replaying and not self.all


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
        positions: PositionsFn | None = None,
    ) -> None:
        self._broker = broker
        # ``/chat/events`` streams get events in stream-position order (see PositionSequencer);
        # ``_positions_read`` settles gaps from the store.
        self.positions = PositionSequencer()
        self._positions_read = positions
        self._settling = False
        self._head = head
        self._gap = gap
        self._rooms: dict[str, _Room] = {}
        self._dirty: list[_Room] = []
        self._tick: list[Event] = []
        self._all_conns: set[Connection] = set()
        self._ws_conns: set[Connection] = set()  # they get user-level events too
        self._flush_scheduled = False
        self._ping_interval = ping_interval
        self._ping_handle: asyncio.TimerHandle | None = None
        self._on_delivered = on_delivered
        self._on_cutoff = on_cutoff
        self._personal_hooks: list[Callable[[Event], None]] = []
        self._session_hooks: list[Callable[[list[str]], None]] = []
        self.connections: set[Connection] = set()
        self.closing = False
        self._tick_revoking = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Told of every membership change passed on (caches of member lists keep current).
        self.membership_observer: Callable[[Event], None] | None = None

    # lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self._broker.start(self.dispatch)
        await self._broker.subscribe(CONTROL)
        self._schedule_ping()

    def close_all(self) -> None:
        """Shutdown: refuse new streams and end every open one so clients reconnect elsewhere."""
        self.closing = True
        if self._ping_handle is not None:
            self._ping_handle.cancel()
        for conn in list(self.connections):
            conn.close()

    def on_sessions_ended(self, hook: Callable[[list[str]], None]) -> None:
        """Called with the ids of sessions ended anywhere (every node hears it), so caches of
        sessions on this node forget them at once."""
        self._session_hooks.append(hook)

    def on_personal(self, hook: Callable[[Event], None]) -> None:
        """Called for every stored event of a personal channel (``@user``) that a
        ``/chat/events`` stream here follows, in stream-position order."""
        self._personal_hooks.append(hook)

    # attaching ---------------------------------------------------------------------------

    async def _room(self, room_id: str) -> _Room:
        room = self._rooms.get(room_id)
        if room is not None:
            await asyncio.shield(room.ready)
            return room
        room = self._rooms[room_id] = _Room()
        try:
            await self._broker.subscribe(room_id)
            head = 0 if room_id.startswith("@") else await self._head(room_id)
            for event in room.sequencer.start(head):
                self._enqueue(room, event)
        except BaseException as exc:
            if not room.ready.done():
                room.ready.set_exception(exc)
                room.ready.exception()
            if self._rooms.get(room_id) is room and room.empty():
                del self._rooms[room_id]
            raise
        room.ready.set_result(None)
        return room

    async def attach(self, conn: Connection, room_id: str, *, replaying: bool) -> None:
        """Start receiving ``room_id``'s events; while ``replaying`` they queue for a hand-off.

        An ``all`` connection replays all its rooms at once: its queue is ``conn.pending``."""
        room = await self._room(room_id)
        self.connections.add(conn)
        if room_id not in conn.room_set:
            conn.rooms.append(room_id)
            conn.room_set.add(room_id)
        if conn.kind == "all":
            room.all.add(conn)
            self._all_conns.add(conn)
            if replaying and conn.pending is None:
                conn.pending = []
        elif replaying:
            room.replaying[conn] = []
        else:
            room.listeners.add(conn)
        if conn.kind == "ws":
            self._ws_conns.add(conn)

    def go_live(self, conn: Connection, room_id: str | None = None) -> list[Event]:
        """Finish a replay: what queued meanwhile; from now on the hub writes directly."""
        if self._dirty:
            # Events already passed on but not yet written belong to the hand-off too; left
            # in the batch, the next flush would write them to this connection unfiltered.
            self._flush()
        if conn.kind == "all":
            pending, conn.pending = conn.pending or [], None
            return pending
        assert room_id is not None
        room = self._rooms[room_id]
        pending = room.replaying.pop(conn, [])
        room.listeners.add(conn)
        return pending

    def pending(self, conn: Connection, room_id: str | None = None) -> list[Event]:
        """What has queued for a replaying connection so far (not taken)."""
        if conn.kind == "all":
            return conn.pending or []
        room = self._rooms.get(room_id or "")
        return [] if room is None else room.replaying.get(conn, [])

    async def detach_room(self, conn: Connection, room_id: str) -> None:
        room = self._rooms.get(room_id)
        if room_id in conn.room_set:
            conn.room_set.discard(room_id)
            conn.rooms.remove(room_id)
        if room is None:
            return
        room.listeners.discard(conn)
        room.replaying.pop(conn, None)
        room.all.discard(conn)
        if room.empty() and room.ready.done():
            del self._rooms[room_id]
            if isinstance(room.repair, asyncio.TimerHandle | asyncio.Task):
                room.repair.cancel()
            await self._broker.unsubscribe(room_id)

    async def detach(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self._all_conns.discard(conn)
        self._ws_conns.discard(conn)
        for room_id in list(conn.rooms):
            await self.detach_room(conn, room_id)

    async def caught_up(self, heads: dict[str, int], timeout: float = 5.0) -> None:
        """Wait until this node has passed on each room's events up to the given rev.

        A replay reads the store, which is ahead of live delivery for a moment: a change is
        committed before it is published. Going live before live delivery has caught up with
        the replay would let such an event through twice; waiting here (microseconds, as a
        rule: the hub wakes us when the room's head passes the mark) closes that window. A
        broker that lost the event is repaired by resync; after ``timeout`` we go live anyway
        rather than hold the stream."""
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        for room_id, rev in heads.items():
            room = self._rooms.get(room_id)
            if room is None or self.head(room_id) >= rev:
                continue
            future: asyncio.Future[None] = loop.create_future()
            room.waiters.append((rev, future))
            waits.append(future)
        if waits:
            await asyncio.wait(waits, timeout=timeout)
            for future in waits:
                future.cancel()

    def _wake_waiters(self, room: _Room) -> None:
        head = room.sequencer.head or 0
        keep = []
        for rev, future in room.waiters:
            if future.done():
                continue
            if rev <= head:
                future.set_result(None)
            else:
                keep.append((rev, future))
        room.waiters = keep

    def listening(self, room_id: str) -> object | None:
        """A token for this node's current subscription to a room (``None``: not listening);
        it changes when the node stops and starts listening again, so a cache kept current by
        the room's events can tell it may have missed some."""
        return self._rooms.get(room_id)

    def head(self, room_id: str) -> int:
        """The newest rev this node has passed on for a room it listens to."""
        room = self._rooms.get(room_id)
        return 0 if room is None or room.sequencer.head is None else room.sequencer.head

    # delivery ----------------------------------------------------------------------------

    def dispatch(self, event: Event) -> None:
        """Called by the broker for every event of a room this node listens to."""
        room = self._rooms.get(event.room_id)
        if room is None:
            if event.room_id == CONTROL:
                self._control(event)
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
        name = event.name
        if name.startswith("member_"):
            if name == "member_left":
                room.revoking = True
                self._tick_revoking = True
            if self.membership_observer is not None:
                self.membership_observer(event)
        if room.all:
            if event.position is None:
                self._tick.append(event)
            else:
                self._pass_in_order(self.positions.accept(event))
                if self.positions.held and not self._settling:
                    self._settle_positions()
        if room.waiters:
            self._wake_waiters(room)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        tick, self._tick = self._tick, []
        now = time.monotonic()
        for room in dirty:
            batch, room.batch = room.batch, []
            if room.revoking:
                room.revoking = False
                self._write_revoking(room, batch, now)
            else:
                self._write_segment(room, batch, now)
        if tick:
            revoking, self._tick_revoking = self._tick_revoking, False
            self._write_all(tick, revoking)
        for room in dirty:
            for conn, queued in list(room.replaying.items()):
                if len(queued) > MAX_PENDING:
                    conn.abort()

    def _write_room(self, room: _Room, batch: list[Event], now: float) -> None:
        encoded: dict[str, bytes] = {}
        personal = any(e.exclude is not None or e.exclude_user_streams is not None for e in batch)
        slow: list[Connection] | None = None
        for conn in room.listeners:
            if personal:  # rare (typing): this tick's events minus the user's own
                mine = [
                    e
                    for e in batch
                    if e.exclude != conn.user_id
                    and (conn.kind != "ws" or e.exclude_user_streams != conn.user_id)
                ]
                if not mine:
                    continue
                data = FRAMERS[conn.kind](mine)
            else:
                data = encoded.get(conn.kind)  # type: ignore[assignment]
                if data is None:
                    data = encoded[conn.kind] = FRAMERS[conn.kind](batch)
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

    def _write_all(self, tick: list[Event], revoking: bool = False) -> None:
        """``/chat/events`` streams: the tick's events of their rooms, in position order
        (nothing at or below what a stream already has: its cursor only grows)."""
        for conn in list(self._all_conns):
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
                mine = self._without_repeated_presence(conn, mine)
            if not mine:
                continue
            if conn.pending is not None:
                conn.pending.extend(mine)
                if len(conn.pending) > MAX_PENDING:
                    conn.abort()
                continue
            try:
                conn.write(chunk(b"".join([e.sse_all for e in mine])))
            except RuntimeError:
                continue
            for e in mine:
                if e.position is not None and e.position > conn.position:
                    conn.position = e.position
            if conn.flow.write_paused:
                self._all_conns.discard(conn)
                self.cut_off(conn)

    @staticmethod
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

    # access follows changes -------------------------------------------------------------

    def _write_revoking(self, room: _Room, batch: list[Event], now: float) -> None:
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

    def _write_segment(self, room: _Room, batch: list[Event], now: float) -> None:
        if room.listeners:
            self._write_room(room, batch, now)
        for conn, queued in room.replaying.items():
            queued.extend(batch)
            if conn.wake is not None:
                conn.wake()

    def _leave(self, conn: Connection, room: _Room, room_id: str) -> None:
        """``conn``'s user left ``room_id``: a room stream ends; a WebSocket drops the room
        (its ``room_removed`` comes on the personal channel); a long-poll is answered."""
        room.listeners.discard(conn)
        queued = room.replaying.pop(conn, None)
        if conn.kind == "poll" and queued is not None:
            room.replaying[conn] = queued  # answered with what it has; it detaches itself
            if conn.wake is not None:
                conn.wake()
            return
        if conn.kind == "ws":
            self._forget_room(conn, room_id)
            return
        log.info("%s stopped receiving room %s: left", conn.user_id, room_id)
        conn.close()

    def _forget_room(self, conn: Connection, room_id: str) -> None:
        if room_id in conn.room_set:
            conn.room_set.discard(room_id)
            conn.rooms.remove(room_id)
        task = asyncio.get_running_loop().create_task(self.detach_room(conn, room_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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

    def _control(self, event: Event) -> None:
        """The control channel: every node hears it."""
        if event.name == "sessions_ended":
            info = msgspec.json.decode(event.data)
            ended = set(info.get("session_ids") or ())
            user_id = info.get("user_id")
            for hook in self._session_hooks:
                hook(sorted(ended))
            for conn in list(self.connections):
                if conn.user_id == user_id and conn.session_id in ended:
                    log.info("ending a %s stream of %s: session ended", conn.kind, user_id)
                    conn.close(WS_REVOKED)
        elif event.name == "room_created":
            for conn in [*self._all_conns, *self._ws_conns]:
                if conn.kind == "all":
                    if conn.pending is not None:
                        conn.pending.append(event)
                    else:
                        conn.send_frames(event.sse_all)
                elif conn.kind == "ws":
                    conn.send_frames(event.ws)

    def cut_off(self, conn: Connection) -> None:
        log.info("cutting off slow %s stream of %s", conn.kind, conn.user_id)
        conn.abort()
        if self._on_cutoff is not None:
            self._on_cutoff()

    # gap repair --------------------------------------------------------------------------

    def _pass_in_order(self, events: list[Event]) -> None:
        """Events released in position order, for the ``/chat/events`` streams; a personal
        change is told to the hooks right here, in that order (a stream follows a room it
        joined from exactly this point)."""
        if not events:
            return
        self._tick.extend(events)
        if self._personal_hooks:
            for event in events:
                if event.room_id.startswith("@"):
                    for hook in self._personal_hooks:
                        hook(event)

    def _settle_positions(self) -> None:
        self._settling = True
        task = asyncio.get_running_loop().create_task(self._settle())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self) -> None:
        """An event came past a gap in stream positions: ask the store what the gap holds
        for the rooms followed here, and pass everything on in order. Every position below a
        published one is committed (positions are taken from one counter row), so one read
        settles the gap for good."""
        try:
            failures = 0
            while (gap := self.positions.missing()) is not None and self._positions_read:
                after, through = gap
                followed = [r for r, room in self._rooms.items() if room.all]
                try:
                    stored = await self._positions_read(after, through, followed)
                except Exception as exc:
                    failures += 1
                    held = len(self.positions.held)
                    log.warning("reading stream positions %d-%d failed: %s", after, through, exc)
                    if held > MAX_HELD_POSITIONS or failures > 20:
                        # Held too long: cut the /chat/events streams (they resume from the
                        # store, losing nothing) rather than hold memory without bound.
                        self.positions.rebase(max(self.positions.held))
                        for conn in list(self._all_conns):
                            conn.abort()
                        return
                    await asyncio.sleep(min(2.0, 0.1 * failures))
                    continue
                ready = self.positions.fill(through, stored)
                if ready:
                    if any(e.name == "member_left" for e in ready):
                        self._tick_revoking = True
                    self._pass_in_order(ready)
                    if not self._flush_scheduled:
                        self._flush_scheduled = True
                        asyncio.get_running_loop().call_soon(self._flush)
        finally:
            self._settling = False

    def _start_repair(self, room_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is None:
            return
        room.repair = asyncio.get_running_loop().create_task(self._repair(room_id, room))

    async def _repair(self, room_id: str, room: _Room) -> None:
        try:
            while (hole := room.sequencer.missing()) is not None:
                after, before = hole
                found = await self._gap(room_id, after, before)
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

    # resync ------------------------------------------------------------------------------

    async def resync(self, heads: HeadsFn) -> int:
        """Compare every room's head in the store with what this node delivered and read the
        difference: after a broker reconnect, and periodically, so nothing a broker dropped
        stays missing. Returns how many events were recovered."""
        rooms = {
            r: room
            for r, room in self._rooms.items()
            if not r.startswith("@") and room.ready.done() and room.sequencer.head is not None
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
                    self._enqueue(room, e)
                    recovered += 1
        if recovered:
            log.info("resync recovered %d events the broker did not deliver", recovered)
        return recovered

    # keep-alive --------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        self._ping_handle = asyncio.get_running_loop().call_later(self._ping_interval, self._ping)

    def _ping(self) -> None:
        for conn in self.connections:
            if conn.kind == "poll":
                continue
            try:
                conn.write(WS_PING if conn.kind == "ws" else PING_CHUNK)
            except RuntimeError:
                continue
            if conn.flow.write_paused:
                conn.abort()
        self._schedule_ping()
