"""``GET /api/sse``: seed 000's notification stream, for its SolidJS ``useSSE('/api/sse')`` hook
as written: ``event: connected`` (data ``{"status": "ok"}``), then every notification the
application's backend sent the caller (``POST /server/users/{id}/notifications``) as a plain
``message`` event whose data is the notification's own ``data``.

It is a room-kind stream of the caller's notices channel (``chat/backend.notices_channel``), so
the hub delivers to it like to any room stream, bytes encoded once. Notifications are stored on
the caller's personal channel; a reconnect with ``Last-Event-ID`` (an ``id:`` this stream sent:
a stream position) replays the ones after it from there, then goes live, with no gap and no
duplicate: the stream listens first (what arrives queues), then reads the store.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec

from hubbub.api.raw import Receive, Scope, Send, credentials, header, query
from hubbub.changes import Change
from hubbub.chat.backend import notice_event, notices_channel
from hubbub.encoding import Event, sse_named, sse_retry
from hubbub.errors import BadRequest, HubbubError, Unavailable
from hubbub.hub import Connection, ConnectionKind
from hubbub.models import MAX_SEQ, personal_channel
from hubbub.transports.handoff import hand_over
from hubbub.transports.resume import StreamLife
from hubbub.transports.sse import (
    keep_until_lost,
    open_connection,
    send_head,
    send_stream_error,
    uvicorn_seam,
)

if TYPE_CHECKING:
    from hubbub.transports.context import StreamDeps

log = logging.getLogger("hubbub.sse")


def parse_notice_cursor(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 16 or int(text) > MAX_SEQ:
        raise BadRequest(
            "Last-Event-ID is not an id this stream sent (a number)", code="invalid_cursor"
        )
    return int(text)


def _frames_of(user_id: str, page: list[Change]) -> list[Event]:
    out: list[Event] = []
    for change in page:
        if change.name != "notification":
            continue
        try:
            data = msgspec.json.decode(change.data).get("data")
        except (msgspec.DecodeError, AttributeError):
            continue
        out.append(notice_event(user_id, change, data))
    return out


async def notice_stream(deps: StreamDeps, scope: Scope, receive: Receive, send: Send) -> None:
    params = query(scope)
    life = StreamLife(deps, "sse")
    try:
        with life.setting_up():
            if deps.hub.closing:
                raise Unavailable("the server is shutting down; reconnect", code="shutting_down")
            life.admit()
            after = parse_notice_cursor(
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
    conn = open_connection(deps.config, transport, flow, who, ConnectionKind.SSE)
    channel = notices_channel(who.user_id)
    try:
        await life.begin(conn)
        # Listen before the head goes out (the seed's hook counts as connected on ``onopen``),
        # then read the store.
        await deps.hub.attach(conn, channel, replaying=True)
        await send_head(send, who)
        if await life.ended_meanwhile():
            await life.end()
            return
        start = (
            after if after is not None else await deps.store.log.visible_position(who.user_id, [])
        )
        conn.send_frames(
            sse_retry(deps.stream_limits.jittered_retry_ms())
            + b"id: %d\n" % start
            + sse_named("connected", {"status": "ok"})
        )
        sent_through = await _replay(deps, conn, who.user_id, start) if after is not None else start
        queued = [e for e in deps.hub.go_live(conn, channel) if (e.seq or 0) > sent_through]
        if queued and not conn.transport.is_closing():
            conn.send_frames(b"".join([e.sse for e in queued]))
        life.settled()
        stream = hand_over(send, transport)
    except Exception:
        log.exception("/api/sse stream of %s failed", who.user_id)
        conn.abort()
        await life.end()
        return
    except BaseException:
        conn.abort()
        life.release()
        raise
    await keep_until_lost(conn, stream, receive, life.end)


async def _replay(deps: StreamDeps, conn: Connection, user_id: str, after: int) -> int:
    """The notifications stored after position ``after``, oldest first; the last position
    read (what queued live up to it is a duplicate)."""
    page_size = deps.config.replay_page
    channel = personal_channel(user_id)
    cursor = after
    while True:
        page = await deps.store.log.user_log(user_id, cursor, page_size, only_room=channel)
        changes = [e for e in page if isinstance(e, Change)]
        frames = _frames_of(user_id, changes)
        if frames and not conn.transport.is_closing():
            conn.send_frames(b"".join([e.sse for e in frames]))
        if page:
            cursor = max(cursor, max(e.position for e in page))
        if len(page) < page_size:
            return cursor
        if conn.flow.write_paused:
            await conn.flow.drain()
