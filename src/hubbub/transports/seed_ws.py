"""``GET /ws/chat?room=<id>``: seed 000's SolidJS ``useWebSocket('/ws/chat')`` chat, as written.

The seed's client knows one thing: every text frame it receives is a chat message (it parses the
frame and shows ``msg.text``), and it sends ``{"type": "message", "text": "…"}``. So this socket
follows one room (``room`` query, default ``general``), entered on connect as on first use (a
missing room is created public, a public one joined, a private one needs membership), and
carries only that room's messages, each as one bare message JSON. Sends take the same path as
``POST /chat/messages`` (rate limit, validation, the writer: stored before anyone sees it);
a refused frame is answered ``{"type": "error", "error": {code, message}}`` and the socket stays.

It is a thin adapter over the hub, like ``/chat/ws``: the connection is an ordinary WebSocket
connection of the hub, whose transport is wrapped by :class:`MessagesOnly`. The hub writes each
tick's pre-built ``{"event", "id", "data"}`` frames, the same bytes object for every socket of
the room; the wrapper rewrites that object into bare message frames once (a one-entry memo keyed
by identity) and every seed socket of the room writes the same result. Pings and close frames
pass through; other events (typing, presence, edits, reactions, membership) are not for this
client and are left out. A ``member_left`` about the socket's own user ends it (close 4403)
right after the messages before it; a logout or revoked session ends it with 4401, shutdown
with 1012, as on ``/chat/ws``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from hubbub.api.guard import origin_allowed
from hubbub.api.raw import Receive, Scope, Send, credentials, decode_json, query
from hubbub.auth.identity import Identity
from hubbub.encoding import to_json, ws_text_frame
from hubbub.errors import BadRequest, Conflict, HubbubError, Invalid, NotFound
from hubbub.hub import Connection, ConnectionKind
from hubbub.models import ClientTimestamp
from hubbub.transports.resume import StreamLife, replay_room
from hubbub.transports.sse import drop_when_unacknowledged
from hubbub.transports.websocket import POLICY_VIOLATION, WsFlow, refuse

if TYPE_CHECKING:
    from hubbub.hub.connection import TransportLike
    from hubbub.transports.context import StreamDeps

log = logging.getLogger("hubbub.ws")

DEFAULT_ROOM = "general"
REMOVED = 4403  # the user left or was removed from the room
_TEXT = 0x1


class SeedFrame(msgspec.Struct, forbid_unknown_fields=False):
    """What the seed's ``send`` puts on the wire; ``client_msg_id`` and ``timestamp`` are
    accepted too, with the meaning they have on ``POST /chat/messages``."""

    type: str
    text: str | None = None
    client_msg_id: str | None = None
    timestamp: ClientTimestamp = None


_frame_decoder = msgspec.json.Decoder(SeedFrame)


def decode_frame(frame: str | bytes) -> SeedFrame:
    """A client frame, or a 4xx :class:`HubbubError` (400 not JSON or nested too deep, 422 the
    wrong shape, an unknown ``type``, no ``text``)."""
    parsed = decode_json(_frame_decoder, frame, what="frame", invalid_code="invalid_frame")
    if parsed.type != "message":
        raise Invalid(
            f'unknown frame type {parsed.type!r}: send {{"type": "message", "text": "…"}}',
            code="unknown_type",
        )
    if parsed.text is None:
        raise Invalid("text is required", code="missing_field")
    return parsed


def error_frame(exc: HubbubError) -> bytes:
    return ws_text_frame(b'{"type":"error","error":' + to_json(exc.body()["error"]) + b"}")


# what the hub writes, as the seed's client reads it ----------------------------------------

_MESSAGE_HEAD = b'{"event":"message","id":'
_LEFT_HEAD = b'{"event":"member_left",'
_DATA = b',"data":'
_NOBODY: frozenset[str] = frozenset()


def _frames(data: bytes) -> list[tuple[int, int, int, int]]:
    """The server frames in ``data`` (whole, unmasked, as the hub builds them): (opcode, frame
    start, payload start, end)."""
    out = []
    i, n = 0, len(data)
    while i + 2 <= n:
        opcode = data[i] & 0x0F
        size = data[i + 1] & 0x7F
        start = i + 2
        if size == 126:
            size, start = int.from_bytes(data[i + 2 : i + 4], "big"), i + 4
        elif size == 127:
            size, start = int.from_bytes(data[i + 2 : i + 10], "big"), i + 10
        out.append((opcode, i, start, start + size))
        i = start + size
    return out


def translate(data: bytes) -> tuple[bytes, frozenset[str]]:
    """The hub's frames as the seed's client reads them: each message's bare JSON as a frame,
    control frames as they are, nothing else; and who left the room among them."""
    parts: list[bytes] = []
    left: set[str] = set()
    for opcode, begin, start, end in _frames(data):
        if opcode != _TEXT:
            parts.append(data[begin:end])
            continue
        payload = data[start:end]
        if payload.startswith(_MESSAGE_HEAD):
            cut = payload.find(_DATA, len(_MESSAGE_HEAD))
            if cut > 0:
                parts.append(ws_text_frame(payload[cut + len(_DATA) : -1]))
        elif payload.startswith(_LEFT_HEAD):
            try:
                left.add(str(msgspec.json.decode(payload)["data"]["user_id"]))
            except (msgspec.DecodeError, KeyError, TypeError):
                continue
    return b"".join(parts), (frozenset(left) if left else _NOBODY)


class _Memo:
    """The last translation: the hub hands every socket of a room the same bytes object in a
    tick, so only the first seed socket pays for it. Held strongly, so identity is safe."""

    __slots__ = ("data", "out")

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.out: tuple[bytes, frozenset[str]] = (b"", _NOBODY)

    def __call__(self, data: bytes) -> tuple[bytes, frozenset[str]]:
        if data is not self.data:
            self.out = translate(data)
            self.data = data
        return self.out


_memo = _Memo()


class MessagesOnly:
    """The socket's transport as the hub sees it: what is written goes out translated."""

    __slots__ = ("_transport", "left", "user_id")

    def __init__(self, transport: TransportLike, user_id: str, left: Callable[[], None]) -> None:
        self._transport = transport
        self.user_id = user_id
        self.left = left

    def write(self, data: bytes) -> None:
        out, left = _memo(data)
        if out:
            self._transport.write(out)
        if left and self.user_id in left:
            self.left()

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


# the endpoint ---------------------------------------------------------------------------------


async def _enter(deps: StreamDeps, who: Identity, room_id: str) -> None:
    """First use, in both modes (API.md: "joined on connect like trust mode's first use"): a
    room that does not exist is created public and joined, a public one joined; a private room
    needs membership already (404 otherwise, as on every route). The seed's client always opens
    ``general``, so in jwt mode too it must work on a fresh server; any signed-in user may create
    a public room anyway (``POST /chat/rooms``)."""
    rooms = deps.rooms
    if rooms.trust:
        await rooms.member_of(who, room_id)
        return
    try:
        await rooms.join(who, room_id)
    except NotFound:
        if await deps.store.rooms.room(room_id) is not None:
            raise  # private, and not a member
        try:
            await rooms.create_room(who, room_id, "public", room_id)
        except Conflict:  # someone else created it meanwhile
            await rooms.join(who, room_id)


async def _refuse_after_accept(send: Send, exc: HubbubError, accept: dict[str, Any]) -> None:
    """The seed's client cannot read an HTTP refusal: it gets the error frame, then a close
    code of 4000 + the status (4401, 4403, 4404, 4422…)."""
    await send(accept)
    text = b'{"type":"error","error":' + to_json(exc.body()["error"]) + b"}"
    await send({"type": "websocket.send", "text": text.decode()})
    await send({"type": "websocket.close", "code": 4000 + exc.status})


async def seed_chat_endpoint(deps: StreamDeps, scope: Scope, receive: Receive, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    if not origin_allowed(scope, deps.config.origins) or deps.hub.closing:
        await send({"type": "websocket.close", "code": POLICY_VIOLATION})
        return
    protocol = getattr(send, "__self__", None)
    transport = getattr(protocol, "transport", None)
    params = query(scope)
    room_id = params.get("room") or DEFAULT_ROOM
    life = StreamLife(deps, "websocket")
    accept: dict[str, Any] = {"type": "websocket.accept"}
    error: HubbubError | None = None
    try:
        with life.setting_up():
            life.admit()
            try:
                who = await deps.auth.identify(
                    credentials(scope, params), ensure_user=False, allow_ticket=True
                )
            except HubbubError as exc:
                error = exc
            else:
                if who.set_cookie:  # trust mode's new guest keeps its name on reconnect
                    accept["headers"] = [(b"set-cookie", who.set_cookie.encode("latin-1"))]
                life.claim(who.user_id)
                try:
                    await _enter(deps, who, room_id)
                except HubbubError as exc:
                    error = exc
    except HubbubError as exc:
        await refuse(scope, send, exc)
        return
    if error is not None or transport is None:
        life.release()
        if error is None:
            error = HubbubError("no transport to write to", code="internal_error")
        await _refuse_after_accept(send, error, accept)
        return

    transport.set_write_buffer_limits(high=deps.config.buffer_bytes)
    drop_when_unacknowledged(transport, deps.config.stale_timeout)

    def end(code: int) -> None:
        if not transport.is_closing():
            transport.write(b"\x88\x02" + code.to_bytes(2, "big"))
            transport.close()

    conn = Connection(
        MessagesOnly(transport, who.user_id, lambda: end(REMOVED)),
        WsFlow(protocol),
        who.user_id,
        ConnectionKind.WS,
        who.session_id,
    )
    conn.on_end = end

    def reply(exc: HubbubError) -> None:
        if not transport.is_closing():
            transport.write(error_frame(exc))
            if conn.flow.write_paused:  # it sends but does not read
                deps.hub.cut_off(conn)

    try:
        await life.begin(conn)
        # Listening before the client sees the socket open: whatever is sent once it is open
        # reaches it. What arrives meanwhile queues; the accept is written in this same step
        # (nothing else writes to the socket before it), then the queue, then live.
        await deps.hub.attach(conn, room_id, replaying=True)
        after = deps.hub.head(room_id)
        await send(accept)
        if await life.ended_meanwhile():
            return
        await replay_room(deps, conn, room_id, after, replay=False)
        life.settled()
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                reply(BadRequest("send text frames of JSON", code="invalid_frame"))
                continue
            try:
                frame = decode_frame(text)
                await deps.limiter.check(who.user_id)
                await deps.writer.send(
                    who,
                    room_id,
                    frame.text or "",
                    timestamp=frame.timestamp,
                    client_msg_id=frame.client_msg_id,
                )
            except HubbubError as exc:
                reply(exc)
            except Exception:
                log.exception("a /ws/chat frame of %s failed", who.user_id)
                reply(HubbubError("the server failed on this frame", code="internal_error"))
    except Exception:
        log.exception("/ws/chat of %s failed", who.user_id)
        conn.abort()
    finally:
        await life.end()


DESCRIPTION = """Seed 000's SolidJS `useWebSocket('/ws/chat')` chat, verbatim.

The socket follows one room (`room` query, default `general`), entered on connect as on trust
mode's first use, in both modes (jwt: session cookie, Bearer token or `?ticket=`): a room that
does not exist is created (public) and joined, a public one joined; a private room needs
membership. Client → server: a text frame
`{"type": "message", "text": "…"}` (optionally `client_msg_id`, `timestamp`) is sent to the room
exactly as `POST /chat/messages` sends (rate limit, validation, stored before anyone sees it);
nothing is sent back for it but the message itself. Server → client: every message of the room,
each as one text frame holding the message JSON, no envelope; nothing else (typing, presence,
edits, reactions and membership events are not sent). A refused frame is answered `{"type":
"error", "error": {"code", "message"}}` and the socket stays open; frames over 64 KiB close it
with 1009. A refused connection gets that error frame and then close code 4000 + the HTTP status
(4401 unauthenticated, 4404 a private room, 4422 an invalid room id); removal from the
room closes it with 4403, a revoked session with 4401, shutdown with 1012."""
