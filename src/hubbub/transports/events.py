"""``GET /chat/events``: one SSE stream of every room the caller belongs to, plus their personal
events — so a browser tab needs one connection, whatever the number of rooms (browsers allow
about six HTTP/1.1 connections per origin).

The cursor (the ``id:`` of each message frame) is the message's *stream position*: one counter
across all rooms, taken in the same transaction as the room's ``seq``. "Everything after
position P in my rooms" is one indexed query, and it includes rooms joined while the client
was away. The hub hands these streams each tick's events in publish order, so the cursor only
grows. Membership changes arrive on the user's personal channel (``@user``); the stream then
follows the new room by resuming from its own last position (see ``docs/architecture.md``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import msgspec

from hubbub.api.raw import Receive, Scope, Send, credentials, header, query
from hubbub.encoding import Event, cursor, parse_cursor, sse_named, sse_retry
from hubbub.errors import BadRequest, HubbubError, Unavailable
from hubbub.hub import Connection, ConnectionKind
from hubbub.models import channel_user, personal_channel
from hubbub.transports.handoff import hand_over
from hubbub.transports.resume import StreamLife, events_of, replay_user
from hubbub.transports.sse import (
    keep_until_lost,
    open_connection,
    send_head,
    send_stream_error,
    uvicorn_seam,
)

if TYPE_CHECKING:
    from hubbub.transports.context import StreamDeps

log = logging.getLogger("hubbub.events")


def parse_events_cursor(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    position = parse_cursor(value.strip())
    if position is None:
        raise BadRequest("Last-Event-ID is not a cursor this server issued", code="invalid_cursor")
    return position


class AllRoomsStreams:
    """The ``/chat/events`` streams of this process and their membership following."""

    def __init__(self, deps: StreamDeps) -> None:
        self.deps = deps
        self.streams: set[Connection] = set()
        self._locks: dict[Connection, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        deps.hub.on_personal(self._personal)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        deps = self.deps
        params = query(scope)
        life = StreamLife(deps, "sse")
        try:
            with life.setting_up():
                if deps.hub.closing:
                    raise Unavailable(
                        "the server is shutting down; reconnect", code="shutting_down"
                    )
                life.admit()
                after = parse_events_cursor(
                    header(scope, b"last-event-id") or params.get("last_event_id")
                )
                who = await deps.auth.identify(
                    credentials(scope, params), ensure_user=False, allow_ticket=True
                )
                transport, flow = uvicorn_seam(send)
                life.claim(who.user_id)
        except HubbubError as exc:
            await send_stream_error(send, exc)
            return
        conn = open_connection(deps.config, transport, flow, who, ConnectionKind.EVENTS)
        self._locks[conn] = lock = asyncio.Lock()
        self.streams.add(conn)

        async def cleanup() -> None:
            self.streams.discard(conn)
            self._locks.pop(conn, None)
            await life.end()

        try:
            await life.begin(conn)
            async with lock:
                # Listen first (everything queues), then look: nothing falls between. The
                # head goes out once everything listens: a client that sends on ``onopen``
                # finds its stream listening.
                await deps.hub.attach(conn, personal_channel(who.user_id), replaying=True)
                room_ids = await deps.store.rooms.room_ids_of(who.user_id)
                await asyncio.gather(*[deps.hub.attach(conn, r, replaying=True) for r in room_ids])
                await send_head(send, who)
                if await life.ended_meanwhile():
                    await cleanup()
                    return
                # A fresh stream starts at the newest entry its caller can see: its cursor
                # never moves with activity in rooms the caller cannot read.
                start = (
                    after
                    if after is not None
                    else await deps.store.log.visible_position(who.user_id, room_ids)
                )
                snapshot = await deps.presence_snapshots.of(room_ids, per_room=False)
                conn.send_frames(
                    sse_retry(deps.stream_limits.jittered_retry_ms())
                    + b"id: %s\n" % cursor(start).encode()
                    + sse_named(
                        "connected",
                        {
                            "status": "ok",
                            "user_id": who.user_id,
                            "rooms": room_ids,
                            "cursor": cursor(start),
                        },
                    )
                    + b"".join([e.sse_all for e in snapshot])
                )
                conn.last_presence = {e.data.split(b'"status"', 1)[0]: e.data for e in snapshot}
                await replay_user(deps, conn, start, replay=after is not None)
            life.settled()
            stream = hand_over(send, transport)
        except Exception:
            log.exception("/chat/events stream of %s failed", who.user_id)
            conn.abort()
            await cleanup()
            return
        except BaseException:
            conn.abort()
            self.streams.discard(conn)
            self._locks.pop(conn, None)
            life.release()
            raise
        await keep_until_lost(conn, stream, receive, cleanup)

    # following membership ----------------------------------------------------------------

    async def _room_since(self, user_id: str, room_id: str, since: int) -> list[Event]:
        page_size = self.deps.config.replay_page
        out: list[Event] = []
        while True:
            page = await self.deps.store.log.user_log(user_id, since, page_size, only_room=room_id)
            out += events_of(page)
            if len(page) < page_size:
                return out
            since = page[-1].position

    def _personal(self, event: Event) -> None:
        user_id = channel_user(event.room_id)
        if user_id is None or event.name not in ("room_added", "room_removed"):
            return
        field = "id" if event.name == "room_added" else "room_id"
        try:
            room_id = str(msgspec.json.decode(event.data)[field])
        except (msgspec.DecodeError, KeyError, TypeError):
            return
        # The room's log from just before the join: ``member_joined`` is logged right before
        # ``room_added`` (``store/sql/rows.py`` ``entered``).
        since = max(0, (event.position or 0) - 2)
        for conn in list(self.streams):
            if conn.user_id == user_id:
                if event.name == "room_added" and conn.pending is None:
                    # From now on the stream's events queue (in position order), so the new
                    # room's stored entries can be merged in among them by position.
                    conn.pending = []
                task = asyncio.get_running_loop().create_task(
                    self._follow(conn, room_id, event.name == "room_added", since)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _follow(self, conn: Connection, room_id: str, joined: bool, since: int) -> None:
        lock = self._locks.get(conn)
        if lock is None:
            return
        async with lock:
            if conn not in self.streams:
                return
            if not joined:
                await self.deps.hub.detach_room(conn, room_id)
                return
            if conn.pending is None:
                conn.pending = []
            try:
                if room_id not in conn.room_set:
                    # Listen first (live events queue), then read the store: nothing falls
                    # between, and the two are merged by position, each entry once.
                    await self.deps.hub.attach(conn, room_id, replaying=True)
                    stored = await self._room_since(conn.user_id, room_id, since)
                else:
                    stored = []
                queued = self.deps.hub.go_live(conn)
                by_position: dict[int, Event] = {}
                unpositioned: list[Event] = []
                for e in [*stored, *queued]:
                    if e.position is None:
                        unpositioned.append(e)
                    elif e.position > conn.position and (
                        e.exclude != conn.user_id and e.exclude_user_streams != conn.user_id
                    ):
                        by_position.setdefault(e.position, e)
                out = [by_position[p] for p in sorted(by_position)]
                out += [e for e in unpositioned if e.exclude != conn.user_id]
                if out and not conn.transport.is_closing():
                    conn.send_frames(b"".join([e.sse_all for e in out]))
                    if by_position:
                        conn.position = max(conn.position, max(by_position))
                # Presence is live only: who of the new room is online now.
                snapshot = await self.deps.presence_snapshots.of([room_id], per_room=True)
                if snapshot and not conn.transport.is_closing():
                    conn.send_frames(b"".join([e.sse_all for e in snapshot]))
            except Exception:
                log.exception("following room %s for %s failed", room_id, conn.user_id)
                conn.abort()
