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
from hubbub.encoding import Event, sse_named, sse_retry
from hubbub.errors import BadRequest, HubbubError, Unavailable
from hubbub.hub import Connection
from hubbub.subscription import hand_off
from hubbub.transports.handoff import StreamProtocol, after_loss, hand_over

if TYPE_CHECKING:
    from hubbub.runtime import Runtime

log = logging.getLogger("hubbub.sse")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


def parse_cursor(value: str | None) -> int | None:
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if not value.isdigit() or len(value) > 18:
        raise BadRequest(
            "Last-Event-ID must be a message seq (a non-negative integer)", code="invalid_cursor"
        )
    return int(value)


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


async def start_stream(
    rt: Runtime, send: Send, transport: Any, flow: Any, who: Identity, kind: str
) -> Connection:
    """Send the SSE response head and set the socket up for the hub: a bounded write buffer,
    and the kernel dropping a peer that acknowledges nothing."""
    headers = list(SSE_HEADERS)
    if who.set_cookie:
        headers.append((b"set-cookie", who.set_cookie.encode("latin-1")))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    transport.set_write_buffer_limits(high=rt.settings.stream_buffer_bytes)
    drop_when_unacknowledged(transport, rt.settings.stale_timeout)
    return Connection(transport, flow, who.user_id, kind)


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


async def room_stream(
    rt: Runtime, scope: Scope, receive: Receive, send: Send, room_id: str
) -> None:
    params = query(scope)
    try:
        if rt.hub.closing:
            raise Unavailable("the server is shutting down; reconnect", code="shutting_down")
        cursor = parse_cursor(header(scope, b"last-event-id") or params.get("last_event_id"))
        who = await rt.auth.identify(credentials(scope, params), ensure_user=False)
        room = await rt.service.open_room(who, room_id)
        transport, flow = uvicorn_seam(send)
        reset: int | None = None
        if cursor is not None and rt.settings.retention_days is not None:
            oldest = await rt.store.oldest_seq(room_id)
            first_kept = oldest if oldest is not None else room.last_seq + 1
            if cursor + 1 < first_kept:
                reset = first_kept
    except HubbubError as exc:
        await send_error(send, exc)
        return

    conn = await start_stream(rt, send, transport, flow, who, "sse")
    if reset is not None:
        cursor = reset - 1
    gauge = rt.metrics.connections.labels("sse")
    gauge.inc()
    conn_id = f"{id(conn):x}"
    presence = rt.service.presence
    user_id = who.user_id

    async def cleanup() -> None:
        gauge.dec()
        await rt.hub.detach(conn)
        await presence.disconnect(user_id, conn_id)

    try:
        await presence.connect(who.user_id, conn_id)
        await rt.hub.attach(conn, room_id, replaying=cursor is not None)
        if cursor is not None:
            cursor = min(cursor, max(room.last_seq, rt.hub.head(room_id)))  # a future cursor
        # `connected` carries an id (the head now, or the client's cursor), so a client that
        # drops before its first message still resumes from here, not from "live only".
        start = cursor if cursor is not None else rt.hub.head(room_id)
        hello = (
            sse_retry(rt.settings.retry_ms)
            + b"id: %d\n" % start
            + sse_named("connected", {"status": "ok", "room_id": room_id, "user_id": who.user_id})
        )
        if reset is not None:
            hello += sse_named("reset", {"room_id": room_id, "oldest_seq": reset})
        conn.send_frames(hello)
        if cursor is not None:
            await replay(rt, conn, room_id, cursor)
        stream = hand_over(send, transport)
    except Exception:
        log.exception("stream of room %s failed", room_id)
        conn.abort()
        await cleanup()
        return
    await keep_until_lost(conn, stream, receive, cleanup)


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


def _sse_frame(event: Event) -> bytes:
    return event.sse


def _ws_frame(event: Event) -> bytes:
    return event.ws


async def replay(rt: Runtime, conn: Connection, room_id: str, cursor: int) -> None:
    """Send ``seq > cursor`` from the store, then hand over to live delivery with no gap."""
    page_size = rt.settings.replay_page
    last = cursor
    frame = _ws_frame if conn.kind == "ws" else _sse_frame
    flow = conn.flow
    while True:
        while True:
            page = await rt.store.history(room_id, after=last, limit=page_size)
            if page:
                conn.send_frames(b"".join([frame(Event.message(m)) for m in page]))
                last = page[-1].seq
            if conn.transport.is_closing():
                return
            if flow.write_paused:
                await flow.drain()  # a resuming client reads at its own pace
            if len(page) < page_size:
                break
        await rt.hub.caught_up({room_id: last})
        if flow.write_paused or conn.transport.is_closing():
            continue
        pending = rt.hub.pending(conn, room_id)
        first = next((e.seq for e in pending if e.seq is not None), None)
        if first is not None and first > last + 1:
            continue  # the store has them by now: read again
        out, _ = hand_off(last, rt.hub.go_live(conn, room_id))
        out = [e for e in out if e.exclude != conn.user_id]
        if out:
            conn.send_frames(b"".join([frame(e) for e in out]))
        return
