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

from hubbub.models import Message

_json = msgspec.json.Encoder()

PING_FRAME = b": ping\n\n"


def to_json(value: Any) -> bytes:
    return _json.encode(value)


class Event:
    """One thing that happened in a room. ``seq`` is set for chat messages only."""

    __slots__ = ("_sse", "born", "data", "exclude", "name", "room_id", "seq")

    def __init__(
        self,
        room_id: str,
        name: str,
        data: bytes,
        seq: int | None = None,
        exclude: str | None = None,
    ) -> None:
        self.born = time.monotonic()
        self.room_id = room_id
        self.name = name
        self.data = data
        self.seq = seq
        self.exclude = exclude  # a user whose own connections skip this event (typing)
        self._sse: bytes | None = None

    @classmethod
    def message(cls, msg: Message) -> Event:
        return cls(msg.room_id, "message", _json.encode(msg), msg.seq)

    @classmethod
    def named(cls, room_id: str, name: str, payload: Any, exclude: str | None = None) -> Event:
        return cls(room_id, name, _json.encode(payload), exclude=exclude)

    @property
    def sse(self) -> bytes:
        """The SSE frame: a chat message has ``id:`` and no ``event:`` line (seed ``onmessage``)."""
        frame = self._sse
        if frame is None:
            if self.seq is not None:
                frame = b"id: %d\ndata: %s\n\n" % (self.seq, self.data)
            else:
                frame = b"event: %s\ndata: %s\n\n" % (self.name.encode(), self.data)
            self._sse = frame
        return frame

    def wire(self) -> bytes:
        """The broker payload: enough to rebuild the event on another node."""
        head = {"r": self.room_id, "n": self.name, "s": self.seq, "x": self.exclude}
        return _json.encode(head) + b"\n" + self.data

    @classmethod
    def from_wire(cls, payload: bytes) -> Event:
        head, _, data = payload.partition(b"\n")
        meta = msgspec.json.decode(head)
        return cls(meta["r"], meta["n"], data, meta["s"], meta.get("x"))


def sse_named(name: str, payload: Any) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), _json.encode(payload))


def sse_retry(ms: int) -> bytes:
    return b"retry: %d\n\n" % ms


def chunk(body: bytes) -> bytes:
    """One HTTP/1.1 chunk; the stream's transport is written directly, so we frame it ourselves."""
    return b"%x\r\n%s\r\n" % (len(body), body)


LAST_CHUNK = b"0\r\n\r\n"
PING_CHUNK = chunk(PING_FRAME)
