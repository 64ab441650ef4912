"""The one resume engine every transport drives, and the start and end every stream shares.

The rules (what is a duplicate, when a hole means "read the store again") are the sans-I/O
:class:`~hubbub.subscription.Resume`; this module only does its I/O: read pages from the store,
write them, wait for the hub to catch up, go live. Room streams (SSE, WebSocket ``subscribe``)
resume by the room's ``rev``, ``/chat/events`` by the stream position; long-poll reads the same
log without going live.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import msgspec

from hubbub.batch import TickBatch
from hubbub.changes import Entry, LoggedMessage, fold
from hubbub.encoding import ROOM_CURSOR_PREFIX, Event
from hubbub.errors import BadRequest
from hubbub.hub import WS_REVOKED, Connection, ConnectionKind
from hubbub.models import MAX_SEQ, personal_channel
from hubbub.subscription import Resume

if TYPE_CHECKING:
    from hubbub.hub import Hub
    from hubbub.presence.base import Presence
    from hubbub.store.base import Store
    from hubbub.transports.context import StreamDeps

# Connection ids (presence counts a user's connections by them, on every node): this process's
# random prefix and a counter; no random draw (a system call) per connection.
_CONN_PREFIX = uuid.uuid4().hex[:12]
_conn_numbers = itertools.count(1)


def event_of(entry: Entry) -> Event:
    if isinstance(entry, LoggedMessage):
        return Event.message(entry.message, entry.position, entry.rev)
    return Event.stored(entry.room_id, entry.name, entry.data, entry.position, entry.rev)


def events_of(page: list[Entry]) -> list[Event]:
    """A page of the log as events, with repeated changes of one message folded."""
    return [event_of(e) for e in fold(page)]


def _key(entry: Entry, by_position: bool) -> int:
    if by_position:
        return entry.position
    return entry.rev if isinstance(entry, LoggedMessage) else (entry.rev or 0)


# cursors ------------------------------------------------------------------------------------


def parse_room_cursor(value: str | int | None) -> tuple[str, int] | None:
    """A room stream's cursor: a message's ``seq`` (digits) or a change's id (``r<rev>``)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_SEQ:
            raise BadRequest("the cursor is out of range", code="invalid_cursor")
        return ("seq", value)
    text = str(value).strip()
    if text == "":
        return None
    kind = "seq"
    if text.startswith(ROOM_CURSOR_PREFIX):
        kind, text = "rev", text[len(ROOM_CURSOR_PREFIX) :]
    if not text.isdigit() or not text.isascii() or len(text) > 16 or int(text) > MAX_SEQ:
        raise BadRequest(
            "the cursor must be an id this stream sent (a message seq, or r<number>)",
            code="invalid_cursor",
        )
    return (kind, int(text))


async def room_rev(deps: StreamDeps, room_id: str, cursor: tuple[str, int]) -> int:
    """Where a cursor stands in the room's log, clamped to now (a cursor from the future, e.g.
    of another database, resumes from now rather than waiting for it)."""
    kind, value = cursor
    rev = value if kind == "rev" else (await deps.store.log.rev_at(room_id, value) if value else 0)
    head = max((await deps.store.log.heads([room_id])).get(room_id, 0), deps.hub.head(room_id))
    return min(rev, head)


# drivers ------------------------------------------------------------------------------------


async def replay_room(
    deps: StreamDeps, conn: Connection, room_id: str, after: int, *, replay: bool = True
) -> None:
    """Send the room's log after rev ``after`` from the store (if ``replay``), then hand over
    to live delivery with no gap and no duplicate (the connection is attached ``replaying``)."""
    resume = Resume(
        after, room_id=room_id, user_id=conn.user_id, user_level=conn.kind is ConnectionKind.WS
    )
    await _drive(deps, conn, resume, room_id, replay=replay)


async def replay_personal(deps: StreamDeps, conn: Connection, after: int) -> None:
    """A WebSocket's own changes (rooms added or removed, read moves) after stream position
    ``after``, then live (the connection is attached ``replaying`` to its personal channel)."""
    channel = personal_channel(conn.user_id)
    resume = Resume(after, user_id=conn.user_id, user_level=True)
    await _drive(deps, conn, resume, channel, only_room=channel)


async def replay_user(
    deps: StreamDeps,
    conn: Connection,
    after: int,
    *,
    replay: bool = True,
    only_room: str | None = None,
) -> None:
    """``/chat/events``: everything of the user's rooms and personal channel after stream
    position ``after`` (if ``replay``; ``only_room``: of that room alone, when the stream
    starts following a room it joined), then what queued meanwhile, then live."""
    resume = Resume(after, user_id=conn.user_id, user_level=True)
    await _drive(deps, conn, resume, None, replay=replay, only_room=only_room)
    conn.position = max(conn.position, resume.cursor)


async def _drive(
    deps: StreamDeps,
    conn: Connection,
    resume: Resume,
    room_id: str | None,
    *,
    replay: bool = True,
    only_room: str | None = None,
) -> None:
    page_size = deps.config.replay_page
    flow = conn.flow
    by_position = resume.by_position
    kind = conn.kind
    while True:
        while replay:
            if not by_position:
                assert room_id is not None
                page = await deps.store.log.room_log(room_id, resume.cursor, page_size)
            else:
                page = await deps.store.log.user_log(
                    conn.user_id, resume.cursor, page_size, only_room=only_room
                )
            through = _key(page[-1], by_position) if page else None
            out = resume.replayed(events_of(page), through=through)
            if out:
                conn.send_frames(b"".join([e.frame(kind) for e in out]))
            if conn.transport.is_closing():
                return
            if flow.write_paused:
                await flow.drain()  # a resuming client reads at its own pace
            if len(page) < page_size:
                break
        await deps.hub.caught_up(resume.heads())
        if conn.transport.is_closing():
            return
        if flow.write_paused:
            await flow.drain()
            continue
        if resume.behind(deps.hub.pending(conn, room_id)):
            replay = True
            continue  # the store has them by now: read again
        out = resume.hand_off(deps.hub.go_live(conn, room_id))
        if out:
            conn.send_frames(b"".join([e.frame(kind) for e in out]))
        return


async def read_room_log(
    deps: StreamDeps, room_id: str, after: int, limit: int
) -> tuple[list[Event], int]:
    """Long-poll: the room's stored events after rev ``after``, and the rev read through."""
    page = await deps.store.log.room_log(room_id, after, limit)
    through = _key(page[-1], False) if page else after
    return events_of(page), through


# presence snapshot --------------------------------------------------------------------------


class PresenceSnapshots:
    """One ``presence`` event per member currently online or away, so a (re)connected client
    starts from the truth (presence itself is live only, never replayed).

    Built for connect storms: a room's member ids are read from the store at most every
    ``MEMBERS_TTL`` seconds and kept current meanwhile by the membership changes this node
    publishes or receives (``noted``; a member who joins while online is also announced live);
    each ``presence`` event is encoded once per room, user and status and shared by every
    stream; only the statuses are looked up per connect (memory, or one Redis round trip)."""

    MEMBERS_TTL = 30.0
    STATUS_TTL = 1.0
    _MAX_ROOMS = 10_000
    _MAX_STATUSES = 100_000

    def __init__(self, hub: Hub, store: Store, presence: Presence) -> None:
        self.hub = hub
        self.store = store
        self.presence = presence
        # room → (expiry, the hub's subscription it was kept current by, member ids)
        self._members: dict[str, tuple[float, object | None, list[str]]] = {}
        self._events: dict[tuple[str, str, str], Event] = {}
        self._reads: TickBatch[str, list[str]] = TickBatch(store.lookups.member_ids)
        # user → (expiry, status): a connect storm into one room of N members would otherwise
        # ask the Presence backend for all N on every connect (N² Redis commands). Kept current
        # by the presence events this node passes on (``noted``); trusted for STATUS_TTL.
        self._statuses: dict[str, tuple[float, str]] = {}
        self._flights: dict[str, asyncio.Future[dict[str, str]]] = {}
        hub.membership_observer = self.noted

    def noted(self, event: Event) -> None:
        """A membership or presence change passed through this node: keep the cached member
        list and statuses current."""
        if event.name == "presence":
            try:
                found = msgspec.json.decode(event.data)
                user, status = str(found["user_id"]), str(found["status"])
            except (msgspec.DecodeError, KeyError, TypeError):
                return
            if user in self._statuses:
                self._statuses[user] = (time.monotonic() + self.STATUS_TTL, status)
            return
        cached = self._members.get(event.room_id)
        if cached is None or event.name not in ("member_joined", "member_left"):
            return
        try:
            user_id = str(msgspec.json.decode(event.data)["user_id"])
        except (msgspec.DecodeError, KeyError, TypeError):
            self._members.pop(event.room_id, None)
            return
        ids = [u for u in cached[2] if u != user_id]
        if event.name == "member_joined":
            ids.append(user_id)
        self._members[event.room_id] = (cached[0], cached[1], ids)

    async def _member_ids(self, room_id: str) -> list[str]:
        now = time.monotonic()
        listening = self.hub.listening(room_id)
        cached = self._members.get(room_id)
        if (
            cached is not None
            and cached[0] > now
            and listening is not None
            and cached[1] is listening
        ):
            return cached[2]
        ids = list(await self._reads.get(room_id) or ())
        if len(self._members) > self._MAX_ROOMS:
            self._members.clear()
            self._events.clear()
        self._members[room_id] = (now + self.MEMBERS_TTL, listening, ids)
        return ids

    def _event(self, room_id: str, user_id: str, status: str) -> Event:
        key = (room_id, user_id, status)
        event = self._events.get(key)
        if event is None:
            payload = {"user_id": user_id, "status": status}
            event = self._events[key] = Event.named(room_id, "presence", payload)
        return event

    async def of(self, room_ids: list[str], *, per_room: bool) -> list[Event]:
        """``per_room``: one per online member of each room (room streams); otherwise one per
        user (``/chat/events``)."""
        seen: set[str] = set()
        out: list[Event] = []
        for room_id in room_ids:
            ids = await self._member_ids(room_id)
            if not per_room:
                ids = [u for u in ids if u not in seen]
            if not ids:
                continue
            status = await self._statuses_of(room_id, ids)
            for user_id in ids:
                seen.add(user_id)
                now = status.get(user_id, "offline")
                if now != "offline":
                    out.append(self._event(room_id, user_id, now))
        return out

    def _fresh(self, ids: list[str], now: float) -> tuple[dict[str, str], list[str]]:
        known: dict[str, str] = {}
        missing: list[str] = []
        for user_id in ids:
            cached = self._statuses.get(user_id)
            if cached is not None and cached[0] > now:
                known[user_id] = cached[1]
            else:
                missing.append(user_id)
        return known, missing

    async def _statuses_of(self, room_id: str, ids: list[str]) -> dict[str, str]:
        """The members' statuses, from the cache where fresh; the rest asked once per room
        however many connects of that room arrive meanwhile (one request in flight)."""
        known, missing = self._fresh(ids, time.monotonic())
        if not missing:
            return known
        flight = self._flights.get(room_id)
        if flight is not None:
            await asyncio.shield(flight)
            known, missing = self._fresh(ids, time.monotonic())
            if not missing:
                return known
        flight = asyncio.ensure_future(self._refresh(missing))
        self._flights[room_id] = flight
        flight.add_done_callback(lambda done: self._landed(room_id, done))
        found = await asyncio.shield(flight)
        return {**known, **found}

    def _landed(self, room_id: str, flight: asyncio.Future[dict[str, str]]) -> None:
        if self._flights.get(room_id) is flight:
            del self._flights[room_id]

    async def _refresh(self, user_ids: list[str]) -> dict[str, str]:
        found = await self.presence.statuses(user_ids)
        if len(self._statuses) > self._MAX_STATUSES:
            self._statuses.clear()
        expiry = time.monotonic() + self.STATUS_TTL
        out: dict[str, str] = {}
        for user_id in user_ids:
            status = out[user_id] = found.get(user_id, "offline")
            self._statuses[user_id] = (expiry, status)
        return out


# start and end --------------------------------------------------------------------------------


class StreamLife:
    """What every stream does when it opens and when it ends, in one place: the limits (see
    :mod:`hubbub.transports.limits`), the connection gauge, presence (online while any
    connection is open), and leaving the hub.

    The order every transport follows: :meth:`admit` first (503 ``server_busy``, before any
    work), then authenticate, :meth:`claim` (429 ``too_many_streams``) before the response
    starts, :meth:`begin`, the replay, :meth:`settled` once live; :meth:`end` on every way out
    (idempotent), or :meth:`release` where no stream began (an error answer, a cancellation),
    so no slot outlives its stream."""

    __slots__ = ("_begun", "_claimed", "_ended", "_pending", "conn", "conn_id", "deps", "label")

    def __init__(self, deps: StreamDeps, label: str) -> None:
        self.deps = deps
        self.label = label
        self.conn: Connection | None = None
        self.conn_id = f"{_CONN_PREFIX}{next(_conn_numbers):x}"
        self._ended = False
        self._begun = False
        self._pending = False
        self._claimed: str | None = None

    def admit(self) -> None:
        self.deps.stream_limits.admit()
        self._pending = True

    def claim(self, user_id: str) -> None:
        self.deps.stream_limits.claim(user_id)
        self._claimed = user_id

    def settled(self) -> None:
        """Set up (live, or answered): the admission slot goes to the next stream."""
        if self._pending:
            self._pending = False
            self.deps.stream_limits.settled()

    def release(self) -> None:
        self.settled()
        user_id, self._claimed = self._claimed, None
        if user_id is not None:
            self.deps.stream_limits.release(user_id)

    @contextlib.contextmanager
    def setting_up(self) -> Iterator[None]:
        """Until the stream has begun, any way out (a refusal, a cancellation) gives back
        what :meth:`admit` and :meth:`claim` took."""
        try:
            yield
        except BaseException:
            self.release()
            raise

    async def begin(self, conn: Connection) -> None:
        self.conn = conn
        self.deps.metrics.connections.labels(self.label).inc()
        self._begun = True
        await self.deps.activity.presence.connect(conn.user_id, self.conn_id)

    async def ended_meanwhile(self) -> bool:
        """Whether the session that opened this stream ended between authentication and the
        stream joining the hub (a revocation announced then found no connection to close).
        Every node's session cache learns of revocations at once, so this costs no query."""
        conn = self.conn
        if conn is None or conn.session_id is None:
            return False
        record = await self.deps.auth.session(conn.session_id)
        if record is None or record.revoked:
            conn.close(WS_REVOKED)
            return True
        return False

    async def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self.release()
        conn = self.conn
        if not self._begun or conn is None:
            return
        self.deps.metrics.connections.labels(self.label).dec()
        await self.deps.hub.detach(conn)
        await self.deps.activity.presence.disconnect(conn.user_id, self.conn_id)
