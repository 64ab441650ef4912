"""The hub: which connections of this node listen to which room, and in what order they hear.

Connections come in kinds (:class:`~hubbub.hub.connection.ConnectionKind`): room streams and
WebSockets listen to rooms one by one (each room resumes by its own ``rev``); ``/chat/events``
streams listen to every room of their user plus the user's personal channel and get the tick's
events in publish order, so their single cursor (the stream position) only ever grows;
long-polls only want to be woken.

Ordering and exactly-once per room are the :class:`~hubbub.subscription.RoomSequencer`'s job,
stream-position order the :class:`~hubbub.subscription.PositionSequencer`'s; holes they find
are read back from the store (:mod:`hubbub.hub.repair`). What they release is written by
:mod:`hubbub.hub.fanout`.

The control channel (``@*``, every node listens) carries ``sessions_ended``, which ends every
stream opened with those sessions, and ``room_created`` for every ``/chat/events`` stream and
WebSocket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec

from hubbub.broker.base import Broker
from hubbub.encoding import Event
from hubbub.hub.connection import WS_REVOKED, Connection, ConnectionKind
from hubbub.hub.fanout import DeliveryObserver, Fanout
from hubbub.hub.repair import GapFn, HeadsFn, PositionsFn, Repair
from hubbub.hub.room import RoomState
from hubbub.models import is_personal
from hubbub.subscription import PositionSequencer

log = logging.getLogger("hubbub.hub")

HeadFn = Callable[[str], Awaitable[int]]

CONTROL = "@*"  # every node listens: session ends, new public rooms


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
        self._head = head
        self._rooms: dict[str, RoomState] = {}
        self._fanout = fanout = Fanout(
            self._rooms,
            self.detach_room,
            ping_interval=ping_interval,
            on_delivered=on_delivered,
            on_cutoff=on_cutoff,
        )
        self._add = fanout.add  # bound once: called for every event released
        self.connections = fanout.connections
        # ``/chat/events`` streams get events in stream-position order (see PositionSequencer).
        self.positions = PositionSequencer()
        self._repair = Repair(
            self._rooms,
            self.positions,
            gap,
            positions,
            release=self._enqueue,
            release_positioned=self._release_settled,
            position_streams=fanout.all_conns,
        )
        self._personal_hooks: list[Callable[[Event], None]] = []
        self._session_hooks: list[Callable[[list[str]], None]] = []
        self.closing = False
        # Told of every membership and presence change passed on (the connect-time caches of
        # member lists and statuses keep current: ``transports/resume.PresenceSnapshots``).
        self.membership_observer: Callable[[Event], None] | None = None

    # lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self._broker.start(self.dispatch)
        await self._broker.subscribe(CONTROL)
        self._fanout.start_pings()

    def close_all(self) -> None:
        """Shutdown: refuse new streams and end every open one so clients reconnect elsewhere."""
        self.closing = True
        self._fanout.stop_pings()
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

    async def _room(self, room_id: str) -> RoomState:
        room = self._rooms.get(room_id)
        if room is not None:
            if room.ready.done():
                room.ready.result()  # raises what the first attach met
            else:
                await asyncio.shield(room.ready)
            return room
        room = self._rooms[room_id] = RoomState()
        try:
            await self._broker.subscribe(room_id)
            # A personal channel has no rev: its order is the stream position.
            head = 0 if is_personal(room_id) else await self._head(room_id)
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

        An ``EVENTS`` connection replays all its rooms at once: its queue is ``conn.pending``."""
        room = await self._room(room_id)
        self.connections.add(conn)
        conn.follow(room_id)
        if conn.kind is ConnectionKind.EVENTS:
            room.all.add(conn)
            self._fanout.all_conns.add(conn)
            if replaying and conn.pending is None:
                conn.pending = []
        elif replaying:
            room.replaying[conn] = []
        else:
            room.listeners.add(conn)
        if conn.kind is ConnectionKind.WS:
            self._fanout.ws_conns.add(conn)

    def go_live(self, conn: Connection, room_id: str | None = None) -> list[Event]:
        """Finish a replay: what queued meanwhile; from now on the hub writes directly."""
        if self._fanout.dirty:
            # Events already passed on but not yet written belong to the hand-off too; left
            # in the batch, the next flush would write them to this connection unfiltered.
            self._fanout.flush()
        if conn.kind is ConnectionKind.EVENTS:
            pending, conn.pending = conn.pending or [], None
            return pending
        assert room_id is not None
        room = self._rooms[room_id]
        pending = room.replaying.pop(conn, [])
        room.listeners.add(conn)
        return pending

    def pending(self, conn: Connection, room_id: str | None = None) -> list[Event]:
        """What has queued for a replaying connection so far (not taken)."""
        if conn.kind is ConnectionKind.EVENTS:
            return conn.pending or []
        room = self._rooms.get(room_id or "")
        return [] if room is None else room.replaying.get(conn, [])

    async def detach_room(self, conn: Connection, room_id: str) -> None:
        room = self._rooms.get(room_id)
        conn.unfollow(room_id)
        if room is None:
            return
        room.listeners.discard(conn)
        room.replaying.pop(conn, None)
        room.all.discard(conn)
        if room.empty() and room.ready.done():
            del self._rooms[room_id]
            room.stop_repair()
            await self._broker.unsubscribe(room_id)

    async def detach(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self._fanout.all_conns.discard(conn)
        self._fanout.ws_conns.discard(conn)
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
            if room is None or room.head >= rev:
                continue
            future: asyncio.Future[None] = loop.create_future()
            room.waiters.append((rev, future))
            waits.append(future)
        if waits:
            await asyncio.wait(waits, timeout=timeout)
            for future in waits:
                future.cancel()

    def listening(self, room_id: str) -> object | None:
        """A token for this node's current subscription to a room (``None``: not listening);
        it changes when the node stops and starts listening again, so a cache kept current by
        the room's events can tell it may have missed some."""
        return self._rooms.get(room_id)

    def head(self, room_id: str) -> int:
        """The newest rev this node has passed on for a room it listens to."""
        room = self._rooms.get(room_id)
        return 0 if room is None else room.head

    def cut_off(self, conn: Connection) -> None:
        """A stream that does not read (past its write-buffer bound) is dropped; it resumes."""
        self._fanout.cut_off(conn)

    async def resync(self, heads: HeadsFn) -> int:
        """Read back what the broker dropped; returns how many events were recovered."""
        return await self._repair.resync(heads)

    # releasing in order ------------------------------------------------------------------

    def dispatch(self, event: Event) -> None:
        """Called by the broker for every event of a room this node listens to."""
        room = self._rooms.get(event.room_id)
        if room is None:
            if event.room_id == CONTROL:
                self._control(event)
            return
        for e in room.sequencer.accept(event):
            self._enqueue(room, e)
        if room.sequencer.held and room.repair is None:
            self._repair.schedule(event.room_id, room)

    def _enqueue(self, room: RoomState, event: Event) -> None:
        """``event`` is next in ``room``'s order: to the room's connections this tick, and to
        the ``/chat/events`` streams once every stream position before it is known."""
        self._add(room, event)
        if self.membership_observer is not None and (
            event.name.startswith("member_") or event.name == "presence"
        ):
            self.membership_observer(event)
        if room.all:
            if event.position is None:
                self._fanout.tick.append(event)
            else:
                self._pass_in_order(self.positions.accept(event))
                if self.positions.held and not self._repair.settling:
                    self._repair.settle_positions()
        if room.waiters:
            room.wake_waiters()

    def _release_settled(self, ready: list[Event]) -> None:
        if any(e.name == "member_left" for e in ready):
            self._fanout.tick_revoking = True
        self._pass_in_order(ready)
        self._fanout.schedule()

    def _pass_in_order(self, events: list[Event]) -> None:
        """Events released in position order, for the ``/chat/events`` streams; a personal
        change is told to the hooks right here, in that order (a stream follows a room it
        joined from exactly this point)."""
        if not events:
            return
        self._fanout.tick.extend(events)
        if self._personal_hooks:
            for event in events:
                if is_personal(event.room_id):
                    for hook in self._personal_hooks:
                        hook(event)

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
            self._fanout.announce(event)
