"""``GET /chat/ws``: WebSocket with JSON frames, a thin adapter over the same hub as SSE.

uvicorn's sans-I/O WebSocket protocol does the handshake, keep-alive pings with a dead-peer
timeout, the 64 KiB frame limit (close 1009) and the closing handshake. Once accepted, the hub
writes each event's pre-built WebSocket frame (``Event.ws``: server frames are not masked, so
one bytes object serves every socket) straight into the transport, exactly as it does for SSE;
replies to the client's ops go through the same transport so they stay in order.

Client → server: ``{"op": "subscribe"|"unsubscribe"|"send"|"typing"|"read"|"ping", "ref"?, …}``.
Server → client: ``{"event", "id"?, "ref"?, "data"}``; see ``docs/api.md``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from hubbub.api.guard import origin_allowed
from hubbub.api.raw import (
    JSON_TYPE,
    Receive,
    Scope,
    Send,
    credentials,
    decode_json,
    json_too_deep,
    lenient_field,
    query,
)
from hubbub.encoding import to_json, ws_text_frame
from hubbub.errors import BadRequest, HubbubError, Invalid
from hubbub.hub import Connection, ConnectionKind
from hubbub.models import personal_channel
from hubbub.transports.events import parse_events_cursor
from hubbub.transports.resume import (
    StreamLife,
    parse_room_cursor,
    replay_personal,
    replay_room,
    room_rev,
)
from hubbub.transports.sse import drop_when_unacknowledged
from hubbub.wire import WsOp, WsRef

if TYPE_CHECKING:
    from hubbub.transports.context import StreamDeps

log = logging.getLogger("hubbub.ws")

POLICY_VIOLATION = 1008
SERVICE_RESTART = 1012
TRY_AGAIN_LATER = 1013


def _close_frame(code: int) -> bytes:
    return b"\x88\x02" + code.to_bytes(2, "big")


class WsFlow:
    """uvicorn's WebSocket protocol signals back-pressure with an Event; the hub reads a flag."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    @property
    def write_paused(self) -> bool:
        return not self._protocol.writable.is_set()

    async def drain(self) -> None:
        await self._protocol.writable.wait()


_op_decoder = msgspec.json.Decoder(WsOp)
_ref_decoder = msgspec.json.Decoder(WsRef)


def decode_op(frame: str | bytes) -> WsOp:
    """A client frame, or a 4xx :class:`HubbubError`: 400 when it is not JSON (also nested
    deeper than 64 levels, or holding a lone UTF-16 surrogate), 422 when it is JSON but not an
    op (no ``op``, a field of the wrong type, a ``seq`` beyond 2^53)."""
    return decode_json(_op_decoder, frame, what="frame", invalid_code="invalid_frame")


def frame_ref(frame: str | bytes) -> Any:
    """The ``ref`` of a frame that :func:`decode_op` refused, so its error frame can carry it:
    decoded alone when the frame is JSON, else found by scanning; ``None`` when there is none."""
    if not json_too_deep(frame):
        try:
            return _ref_decoder.decode(frame).ref
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeError, RecursionError):
            pass
    return lenient_field(frame, "ref")


class WebSocketSession:
    def __init__(self, deps: StreamDeps, conn: Connection, who: Any) -> None:
        self.deps = deps
        self.conn = conn
        self.who = who

    def reply(self, event: str, data: Any, ref: Any = None, raw: bytes | None = None) -> None:
        body = raw if raw is not None else to_json(data)
        head = b'{"event":"%s"' % event.encode()
        if ref is not None:
            head += b',"ref":' + to_json(ref)
        self.conn.send_frames(ws_text_frame(head + b',"data":' + body + b"}"))
        if self.conn.flow.write_paused:
            # It sends but does not read: its replies may not pile up without bound either.
            self.deps.hub.cut_off(self.conn)

    def error(self, exc: HubbubError, ref: Any = None) -> None:
        self.reply("error", exc.body()["error"], ref)

    async def handle(self, text: str) -> None:
        """One client frame. Whatever it holds, the answer is a frame (an ``error`` carrying the
        frame's ``ref`` when it had one, even without a valid ``op``) and the socket stays."""
        try:
            op = decode_op(text)
        except HubbubError as exc:
            self.error(exc, frame_ref(text))
            return
        try:
            await self._dispatch(op)
        except HubbubError as exc:
            self.error(exc, op.ref)
        except Exception:
            log.exception("websocket op %r of %s failed", op.op, self.who.user_id)
            self.error(
                HubbubError("the server failed on this frame", code="internal_error"), op.ref
            )

    def _room(self, op: WsOp) -> str:
        if not op.room_id:
            raise Invalid("room_id is required", code="missing_field")
        return op.room_id

    async def _dispatch(self, op: WsOp) -> None:
        deps, who = self.deps, self.who
        if op.op == "ping":
            self.reply("pong", {}, op.ref)
        elif op.op == "subscribe":
            room_id = self._room(op)
            cursor = parse_room_cursor(op.after_seq)
            if room_id in self.conn.room_set:
                raise Invalid(f"already subscribed to {room_id!r}", code="already_subscribed")
            room = await deps.rooms.open_room(who, room_id)
            # Everything live queues until `subscribed` (and the replay) are out.
            await deps.hub.attach(self.conn, room_id, replaying=True)
            try:
                after = deps.hub.head(room_id)
                if cursor is not None:
                    after = await room_rev(deps, room_id, cursor)
                self.reply("subscribed", {"room_id": room_id, "head_seq": room.last_seq}, op.ref)
                snapshot = await deps.presence_snapshots.of([room_id], per_room=True)
                if snapshot:
                    self.conn.send_frames(b"".join([e.ws for e in snapshot]))
                await replay_room(deps, self.conn, room_id, after, replay=cursor is not None)
            except BaseException:
                await deps.hub.detach_room(self.conn, room_id)
                raise
        elif op.op == "unsubscribe":
            room_id = self._room(op)
            await deps.hub.detach_room(self.conn, room_id)
            self.reply("unsubscribed", {"room_id": room_id}, op.ref)
        elif op.op == "send":
            room_id = self._room(op)
            if op.message is None:
                raise Invalid("message is required", code="missing_field")
            await deps.limiter.check(who.user_id)
            sent = await deps.writer.send(
                who, room_id, op.message, timestamp=op.timestamp, client_msg_id=op.client_msg_id
            )
            self.reply("ack", None, op.ref, raw=sent.event.data)
        elif op.op == "typing":
            room_id = self._room(op)
            if op.is_typing is None:
                raise Invalid("is_typing is required", code="missing_field")
            await deps.activity.set_typing(who, room_id, op.is_typing)
            self.reply("ok", {"op": "typing", "room_id": room_id}, op.ref)
        elif op.op == "read":
            room_id = self._room(op)
            if op.seq is None or op.seq < 0:
                raise Invalid("seq (≥ 0) is required", code="missing_field")
            pointer, unread = await deps.messages.mark_read(who, room_id, op.seq)
            self.reply(
                "ok", {"op": "read", "room_id": room_id, "seq": pointer, "unread": unread}, op.ref
            )
        else:
            raise Invalid(f"unknown op {op.op!r}", code="unknown_op")


async def refuse(scope: Scope, send: Send, error: HubbubError) -> None:
    """A stream limit refuses the upgrade itself: an HTTP answer (429 ``too_many_streams`` or
    503 ``server_busy``, with ``Retry-After`` and the error body) where the server speaks the
    ASGI WebSocket denial extension (uvicorn does), so no WebSocket is ever opened; elsewhere
    the socket opens, gets an ``error`` frame and closes with 1013 (try again later)."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        headers = [(b"content-type", JSON_TYPE)]
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            headers.append((b"retry-after", str(retry_after).encode()))
        await send(
            {"type": "websocket.http.response.start", "status": error.status, "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": to_json(error.body())})
        return
    await send({"type": "websocket.accept"})
    frame = b'{"event":"error","data":' + to_json(error.body()["error"]) + b"}"
    await send({"type": "websocket.send", "text": frame.decode()})
    await send({"type": "websocket.close", "code": TRY_AGAIN_LATER})


async def websocket_endpoint(deps: StreamDeps, scope: Scope, receive: Receive, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    if not origin_allowed(scope, deps.config.origins) or deps.hub.closing:
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})
        return
    protocol = getattr(send, "__self__", None)
    transport = getattr(protocol, "transport", None)
    params = query(scope)
    life = StreamLife(deps, "websocket")
    error: HubbubError | None = None
    try:
        with life.setting_up():
            life.admit()
            try:
                # `?after=<cursor>`: the personal changes since an id the socket had (`g…`).
                after = parse_events_cursor(params.get("after"))
                who = await deps.auth.identify(
                    credentials(scope, params), ensure_user=False, allow_ticket=True
                )
            except HubbubError as exc:
                error = exc
            else:
                life.claim(who.user_id)
    except HubbubError as exc:
        await refuse(scope, send, exc)
        return
    if error is not None or transport is None:
        life.release()
        await send({"type": "websocket.accept"})
        if error is not None:
            frame = b'{"event":"error","data":' + to_json(error.body()["error"]) + b"}"
            await send({"type": "websocket.send", "text": frame.decode()})
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})
        return

    with life.setting_up():
        await send({"type": "websocket.accept"})
    transport.set_write_buffer_limits(high=deps.config.buffer_bytes)
    drop_when_unacknowledged(transport, deps.config.stale_timeout)
    conn = Connection(transport, WsFlow(protocol), who.user_id, ConnectionKind.WS, who.session_id)

    def end(code: int) -> None:
        if not transport.is_closing():
            transport.write(_close_frame(code))
            transport.close()

    conn.on_end = end
    deps.hub.connections.add(conn)
    session = WebSocketSession(deps, conn, who)
    try:
        await life.begin(conn)
        # The user's own changes (rooms added or removed, read moves) arrive live.
        await deps.hub.attach(conn, personal_channel(who.user_id), replaying=after is not None)
        if await life.ended_meanwhile():
            return
        if after is not None:
            await replay_personal(deps, conn, after)
        life.settled()
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                session.error(BadRequest("send text frames of JSON", code="invalid_frame"))
                continue
            await session.handle(text)
    except Exception:
        log.exception("websocket of %s failed", who.user_id)
        conn.abort()
    finally:
        await life.end()
