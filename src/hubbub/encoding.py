"""Events are encoded once and the same bytes go to every receiver.

An :class:`Event` holds its JSON body and its SSE frame, both built at most once. The hub joins
the frames of one room that were published in the same loop tick and wraps them in one HTTP/1.1
chunk (:func:`chunk`), so delivering to N streams is N ``transport.write`` calls of one shared
bytes object.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from hubbub.cursors import CursorCipher
from hubbub.models import Message

_json = msgspec.json.Encoder()

PING_FRAME = b": ping\n\n"


def to_json(value: Any) -> bytes:
    return _json.encode(value)


def line_safe_json(value: Any) -> bytes:
    """JSON with U+0085, U+2028 and U+2029 escaped. They are legal in JSON and SSE, but many
    line readers (Python's ``splitlines``, some proxies) treat them as line breaks and would cut
    an event's ``data:`` line in two. Escaped, they decode to the same text."""
    data = _json.encode(value)
    if b"\xe2\x80\xa8" in data or b"\xe2\x80\xa9" in data or b"\xc2\x85" in data:
        data = (
            data.replace(b"\xe2\x80\xa8", b"\\u2028")
            .replace(b"\xe2\x80\xa9", b"\\u2029")
            .replace(b"\xc2\x85", b"\\u0085")
        )
    return data


class Event:
    """One thing that happened in a room (or on a user's personal channel ``@user``).

    * ``seq``: a chat message's number in its room (its ``id`` on room streams);
    * ``rev``: a stored event's place in its room's log (messages and changes share it; the
      hub orders and de-duplicates by it); ``None`` for live-only events and personal ones;
    * ``position``: a stored event's place in the all-rooms stream (its ``/chat/events`` id).

    Each wire form is built at most once."""

    __slots__ = (
        "_all",
        "_sse",
        "_ws",
        "born",
        "data",
        "exclude",
        "exclude_user_streams",
        "name",
        "position",
        "rev",
        "room_id",
        "seq",
        "trace",
    )

    def __init__(
        self,
        room_id: str,
        name: str,
        data: bytes,
        seq: int | None = None,
        exclude: str | None = None,
        position: int | None = None,
        rev: int | None = None,
    ) -> None:
        self.born = time.monotonic()
        self.room_id = room_id
        self.name = name
        self.data = data
        self.seq = seq
        self.position = position
        self.rev = rev
        self.exclude = exclude  # a user whose own connections skip this event (typing)
        # A user whose user-level streams (/chat/events, WebSocket) skip this event: their own
        # read receipt, which reaches them as a stored personal ``read`` instead.
        self.exclude_user_streams: str | None = None
        self._sse: bytes | None = None
        self._all: bytes | None = None
        self._ws: bytes | None = None
        # The W3C traceparent of the span that published it (only while tracing is on,
        # see hubbub.tracing): carried through the broker so the deliver span is its child.
        self.trace: str | None = None

    @classmethod
    def message(cls, msg: Message, position: int | None = None, rev: int | None = None) -> Event:
        return cls(msg.room_id, "message", line_safe_json(msg), msg.seq, position=position, rev=rev)

    @classmethod
    def stored(cls, room_id: str, name: str, data: bytes, position: int, rev: int | None) -> Event:
        """A logged change (not a message): it has a position, and a ``rev`` in a room."""
        return cls(room_id, name, data, position=position, rev=rev)

    @classmethod
    def named(cls, room_id: str, name: str, payload: Any, exclude: str | None = None) -> Event:
        return cls(room_id, name, line_safe_json(payload), exclude=exclude)

    @property
    def sse(self) -> bytes:
        """The room-stream frame: a chat message has ``id: <seq>`` and no ``event:`` line (seed
        ``onmessage``); a stored change has its room cursor as ``id``; live events have none."""
        frame = self._sse
        if frame is None:
            if self.seq is not None:
                frame = b"id: %d\ndata: %s\n\n" % (self.seq, self.data)
            elif self.rev is not None:
                frame = b"id: r%d\nevent: %s\ndata: %s\n\n" % (
                    self.rev,
                    self.name.encode(),
                    self.data,
                )
            else:
                frame = b"event: %s\ndata: %s\n\n" % (self.name.encode(), self.data)
            self._sse = frame
        return frame

    @property
    def sse_all(self) -> bytes:
        """The frame on ``/chat/events``: every stored event's ``id:`` is the all-rooms cursor."""
        frame = self._all
        if frame is None:
            if self.position is None:
                frame = self.sse if self.seq is None else b"data: %s\n\n" % self.data
            elif self.seq is not None:
                frame = b"id: %s\ndata: %s\n\n" % (cursor(self.position).encode(), self.data)
            else:
                frame = b"id: %s\nevent: %s\ndata: %s\n\n" % (
                    cursor(self.position).encode(),
                    self.name.encode(),
                    self.data,
                )
            self._all = frame
        return frame

    @property
    def ws(self) -> bytes:
        """A complete WebSocket text frame ``{"event", "id"?, "data"}`` (server frames are not
        masked, so the same bytes go to every socket)."""
        frame = self._ws
        if frame is None:
            if self.seq is not None:
                text = b'{"event":"message","id":%d,"data":%s}' % (self.seq, self.data)
            elif self.rev is not None:
                text = b'{"event":"%s","id":"r%d","data":%s}' % (
                    self.name.encode(),
                    self.rev,
                    self.data,
                )
            elif self.position is not None:
                text = b'{"event":"%s","id":"%s","data":%s}' % (
                    self.name.encode(),
                    cursor(self.position).encode(),
                    self.data,
                )
            else:
                text = b'{"event":"%s","data":%s}' % (self.name.encode(), self.data)
            frame = self._ws = ws_text_frame(text)
        return frame

    def frame(self, kind: str) -> bytes:
        """This event as a connection of ``kind`` receives it (outside the hub's fast path)."""
        if kind == "all":
            return self.sse_all
        if kind == "ws":
            return self.ws
        return self.sse

    def wire(self, sent_at: float | None = None) -> bytes:
        """The broker payload: enough to rebuild the event on another node."""
        head: dict[str, Any] = {
            "r": self.room_id,
            "n": self.name,
            "s": self.seq,
            "x": self.exclude,
            "u": self.exclude_user_streams,
            "p": self.position,
            "v": self.rev,
        }
        if sent_at is not None:  # published at (wall clock): the broker lag metric
            head["w"] = round(sent_at, 6)
        if self.trace is not None:
            head["t"] = self.trace
        return _json.encode(head) + b"\n" + self.data

    @classmethod
    def from_wire(cls, payload: bytes) -> Event:
        return cls.from_wire_timed(payload)[0]

    @classmethod
    def from_wire_timed(cls, payload: bytes) -> tuple[Event, float | None]:
        """The event and when it was published (wall clock; None from a node that predates
        the field)."""
        head, _, data = payload.partition(b"\n")
        meta = msgspec.json.decode(head)
        event = cls(
            meta["r"], meta["n"], data, meta["s"], meta.get("x"), meta.get("p"), meta.get("v")
        )
        event.exclude_user_streams = meta.get("u")
        event.trace = meta.get("t")
        return event, meta.get("w")


ROOM_CURSOR_PREFIX = "r"


def room_cursor(rev: int) -> str:
    """The ``id`` of a room's stored change (a message's ``id`` is its ``seq``)."""
    return f"{ROOM_CURSOR_PREFIX}{rev}"


_cursors = CursorCipher("hubbub: no secret configured yet")


def use_cursor_secret(secret: str) -> None:
    """Key the ``/chat/events`` cursors (``cursors.py``) with the server's secret: every node
    sharing the secret issues and reads the same cursors."""
    global _cursors
    _cursors = CursorCipher(secret)


def cursor(position: int) -> str:
    """The opaque ``/chat/events`` cursor for a stream position."""
    return _cursors.encode(position)


def parse_cursor(value: str) -> int | None:
    """The position in a cursor we issued; ``None`` if it is not one."""
    return _cursors.decode(value)


def ws_text_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return b"\x81" + bytes((n,)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


def sse_named(name: str, payload: Any) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), _json.encode(payload))


def sse_retry(ms: int) -> bytes:
    return b"retry: %d\n\n" % ms


def chunk(body: bytes) -> bytes:
    """One HTTP/1.1 chunk; the stream's transport is written directly, so we frame it ourselves."""
    return b"%x\r\n%s\r\n" % (len(body), body)


LAST_CHUNK = b"0\r\n\r\n"
PING_CHUNK = chunk(PING_FRAME)
