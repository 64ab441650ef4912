"""One open stream as the hub sees it, and how each kind of stream frames what it is sent.

The hub writes into a transport directly (no task or queue per subscriber), so a connection is
only what the fan-out needs at hand: the transport's ``write``, its back-pressure flag, the
user and session it belongs to, and the rooms it follows.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from hubbub.encoding import LAST_CHUNK, Event, chunk

WS_PING = b"\x89\x00"
WS_SERVICE_RESTART = 1012
WS_REVOKED = 4401


class ConnectionKind(StrEnum):
    """What a stream listens to and how its bytes are framed.

    The values are the kinds :meth:`hubbub.encoding.Event.frame` knows."""

    SSE = "sse"  # a room stream (``/chat/room/{id}/events``), resumed by the room's rev
    EVENTS = "all"  # ``/chat/events``: every room of its user, in stream-position order
    WS = "ws"  # a WebSocket: rooms one by one plus its user's personal channel
    POLL = "poll"  # a long-poll: never written to, only woken


class FlowState(Protocol):
    @property
    def write_paused(self) -> bool: ...

    async def drain(self) -> None: ...


class TransportLike(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: ...


def frame_sse(batch: list[Event]) -> bytes:
    return chunk(b"".join([e.sse for e in batch]))


def frame_ws(batch: list[Event]) -> bytes:
    return b"".join([e.ws for e in batch])


class Connection:
    """One open stream. ``pending`` is a list while an ``EVENTS`` stream replays, else ``None``."""

    __slots__ = (
        "flow",
        "kind",
        "last_presence",
        "on_end",
        "pending",
        "position",
        "room_set",
        "rooms",
        "session_id",
        "transport",
        "user_id",
        "wake",
        "write",
    )

    def __init__(
        self,
        transport: TransportLike,
        flow: FlowState,
        user_id: str,
        kind: ConnectionKind = ConnectionKind.SSE,
        session_id: str | None = None,
    ) -> None:
        self.transport = transport
        self.write = transport.write
        self.flow = flow
        self.user_id = user_id
        self.session_id = session_id
        self.kind = kind
        self.pending: list[Event] | None = None
        self.position = 0  # ``EVENTS`` streams: the newest stream position written
        self.rooms: list[str] = []
        self.room_set: set[str] = set()
        self.last_presence: dict[bytes, bytes] | None = None
        # How a stream that is not plain SSE ends, given a WebSocket close code (1012 to
        # reconnect elsewhere, 4401 when its credentials were revoked).
        self.on_end: Callable[[int], None] | None = None
        self.wake: Callable[[], None] | None = None  # long-poll: something queued

    def follow(self, room_id: str) -> None:
        if room_id not in self.room_set:
            self.rooms.append(room_id)
            self.room_set.add(room_id)

    def unfollow(self, room_id: str) -> None:
        if room_id in self.room_set:
            self.room_set.discard(room_id)
            self.rooms.remove(room_id)

    def send_frames(self, frames: bytes) -> None:
        """Write outside the fan-out (connect, replay), framed as this connection's kind."""
        if not self.transport.is_closing():
            self.write(frames if self.kind is ConnectionKind.WS else chunk(frames))

    def close(self, code: int = WS_SERVICE_RESTART) -> None:
        """End the stream cleanly: the response ends (SSE) or the socket closes with ``code``."""
        if self.on_end is not None:
            self.on_end(code)
        elif not self.transport.is_closing():
            self.write(LAST_CHUNK)
            self.transport.close()

    def abort(self) -> None:
        self.transport.abort()
