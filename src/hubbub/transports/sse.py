"""The per-room SSE stream, a raw ASGI endpoint on uvicorn's fast lane.

Once the response headers are out, the stream's socket belongs to the hub: we take uvicorn's
transport and flow-control object from the ASGI ``send`` callable (uvicorn's
``RequestResponseCycle``; the version is pinned and ``tests/integration/test_streams.py`` covers
the seam) and from then on the hub writes pre-chunked shared bytes into it. The request's own
task only waits for the disconnect, so an idle stream costs no extra task and no timer.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import TYPE_CHECKING, Any

from hubbub.api.raw import Receive, Scope, Send, credentials, header, query, send_error
from hubbub.auth.identity import Identity
from hubbub.encoding import room_cursor, sse_named, sse_retry, to_json
from hubbub.errors import HubbubError, Unavailable
from hubbub.hub import Connection, ConnectionKind
from hubbub.transports.handoff import StreamProtocol, after_loss, hand_over
from hubbub.transports.resume import (
    StreamLife,
    parse_room_cursor,
    replay_room,
    room_rev,
)

if TYPE_CHECKING:
    from hubbub.transports.context import StreamConfig, StreamDeps

log = logging.getLogger("hubbub.sse")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


def drop_when_unacknowledged(transport: Any, seconds: float) -> None:
    """The seed's stale-connection cleanup, done by the kernel: with pings flowing every 15 s,
    a peer that vanished without closing (no FIN, no RST) leaves them unacknowledged, and
    TCP_USER_TIMEOUT aborts the connection after ``seconds`` — no timer of ours per stream."""
    sock = transport.get_extra_info("socket")
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if sock is None or option is None or seconds <= 0:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, option, int(seconds * 1000))


def open_connection(
    config: StreamConfig, transport: Any, flow: Any, who: Identity, kind: ConnectionKind
) -> Connection:
    """The stream as the hub sees it, its socket set up: a bounded write buffer, and the kernel
    dropping a peer that acknowledges nothing. Made before the response head goes out, so the
    stream can listen first: a client that sees the head (``EventSource.onopen``) and sends at
    once finds its stream already listening."""
    transport.set_write_buffer_limits(high=config.buffer_bytes)
    drop_when_unacknowledged(transport, config.stale_timeout)
    return Connection(transport, flow, who.user_id, kind, who.session_id)


async def send_head(send: Send, who: Identity) -> None:
    headers = list(SSE_HEADERS)
    if who.set_cookie:
        headers.append((b"set-cookie", who.set_cookie.encode("latin-1")))
    await send({"type": "http.response.start", "status": 200, "headers": headers})


def uvicorn_seam(send: Send) -> tuple[Any, Any]:
    """uvicorn's transport and flow control behind ``send`` (see the module docstring)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    flow = getattr(cycle, "flow", None)
    if transport is None or flow is None:
        raise Unavailable(
            "streams need Hubbub's uvicorn server (hubbub serve)", code="stream_unsupported"
        )
    return transport, flow


async def send_stream_error(send: Send, error: HubbubError) -> None:
    """An SSE stream that cannot start. A browser's ``EventSource`` gives up for good on any
    answer but 200, so a *temporary* refusal (503: the server is busy setting up other streams,
    shutting down, or its store is away) is a 200 stream that says when to come back
    (``retry:``, jittered like every ``Retry-After``) and ends: the browser reconnects by
    itself, with its ``Last-Event-ID``, and loses nothing. The error is in a comment line.
    Anything else (401, 404, 429 …) is the plain error answer."""
    retry_after = getattr(error, "retry_after", None)
    if error.status != 503:
        await send_error(send, error)
        return
    wait_ms = int(retry_after * 1000) if retry_after else 3000
    body = b"retry: %d\n: %s\n\n" % (wait_ms, to_json(error.body()))
    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-store"),
        (b"x-accel-buffering", b"no"),
        (b"content-length", b"%d" % len(body)),
        (b"retry-after", b"%d" % max(1, wait_ms // 1000)),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def room_stream(
    deps: StreamDeps, scope: Scope, receive: Receive, send: Send, room_id: str
) -> None:
    params = query(scope)
    life = StreamLife(deps, "sse")
    try:
        with life.setting_up():
            if deps.hub.closing:
                raise Unavailable("the server is shutting down; reconnect", code="shutting_down")
            life.admit()
            cursor = parse_room_cursor(
                header(scope, b"last-event-id") or params.get("last_event_id")
            )
            who = await deps.auth.identify(
                credentials(scope, params), ensure_user=False, allow_ticket=True
            )
            await deps.rooms.open_room(who, room_id)
            transport, flow = uvicorn_seam(send)
            reset: int | None = None
            if cursor is not None and deps.config.retention_days is not None:
                reset = await _reset_to(deps, room_id, cursor)
            life.claim(who.user_id)
    except HubbubError as exc:
        await send_stream_error(send, exc)
        return

    conn = open_connection(deps.config, transport, flow, who, ConnectionKind.SSE)
    try:
        await life.begin(conn)
        # Listening before the head goes out; everything live queues until the hello (and the
        # replay) are out.
        await deps.hub.attach(conn, room_id, replaying=True)
        await send_head(send, who)
        if await life.ended_meanwhile():
            await life.end()
            return
        after: int | None = None
        if reset is not None:
            after = await room_rev(deps, room_id, ("seq", reset - 1))
        elif cursor is not None:
            after = await room_rev(deps, room_id, cursor)
        # `connected` carries an id (the client's place, or the head now), so a client that
        # drops before its first event still resumes from here, not from "live only".
        start = after if after is not None else deps.hub.head(room_id)
        hello = (
            sse_retry(deps.stream_limits.jittered_retry_ms())
            + b"id: %s\n" % room_cursor(start).encode()
            + sse_named("connected", {"status": "ok", "room_id": room_id, "user_id": who.user_id})
        )
        if reset is not None:
            hello += sse_named("reset", {"room_id": room_id, "oldest_seq": reset})
        snapshot = await deps.presence_snapshots.of([room_id], per_room=True)
        conn.send_frames(hello + b"".join([e.sse for e in snapshot]))
        await replay_room(deps, conn, room_id, start, replay=after is not None)
        life.settled()
        stream = hand_over(send, transport)
    except Exception:
        log.exception("stream of room %s failed", room_id)
        conn.abort()
        await life.end()
        return
    except BaseException:
        conn.abort()
        life.release()
        raise
    await keep_until_lost(conn, stream, receive, life.end)


async def _reset_to(deps: StreamDeps, room_id: str, cursor: tuple[str, int]) -> int | None:
    """With retention on, a cursor older than what is kept resumes from the oldest kept
    message, announced by ``event: reset`` — never a silent hole."""
    room = await deps.store.rooms.room(room_id)
    oldest = await deps.store.messages.oldest_seq(room_id)
    last_seq = room.last_seq if room is not None else 0
    first_kept = oldest if oldest is not None else last_seq + 1
    if first_kept <= 1:
        return None
    kind, value = cursor
    if kind == "seq":
        return first_kept if value + 1 < first_kept else None
    kept_rev = await deps.store.log.rev_at(room_id, first_kept) if oldest is not None else None
    if kept_rev is not None and value < kept_rev - 1:
        return first_kept
    return None


async def keep_until_lost(
    conn: Connection, stream: StreamProtocol | None, receive: Receive, cleanup: Any
) -> None:
    """A handed-over stream needs nothing more from this request; otherwise wait here."""
    if stream is not None:
        conn.flow = stream
        after_loss(stream, cleanup)
        return
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    finally:
        await cleanup()
