"""The SSE fast lane: once a stream is live, its socket leaves uvicorn and the request ends.

A live SSE stream only ever writes. Keeping it inside uvicorn costs an HTTP parser, a request
cycle and a task parked in ``receive()`` per open stream — most of the ~12 KiB an idle stream
cost. So once the response headers and the replay are out, :func:`hand_over` swaps the
connection's protocol for a :class:`StreamProtocol` (a few slots: back-pressure flags and a
"lost" callback), tells uvicorn the response is done and lets the ASGI call return. The hub
keeps writing to the same transport; when the peer goes away, ``connection_lost`` runs the
stream's cleanup.

The seam is uvicorn's ``RequestResponseCycle`` (behind ``send``) and ``HttpToolsProtocol``
(the transport's protocol); uvicorn is pinned, and every stream test goes through here. If the
seam is not there (another server), :func:`hand_over` returns ``None`` and the caller keeps the
request open the ordinary way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class StreamProtocol(asyncio.Protocol):
    __slots__ = ("_drained", "_on_lost", "write_paused")

    def __init__(self) -> None:
        self.write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._on_lost: Callable[[], None] | None = None

    def on_lost(self, callback: Callable[[], None]) -> None:
        self._on_lost = callback

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def drain(self) -> None:
        while self.write_paused:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def data_received(self, data: bytes) -> None:
        """A stream's client has nothing more to say; anything it sends is ignored."""

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.resume_writing()
        callback, self._on_lost = self._on_lost, None
        if callback is not None:
            callback()


def hand_over(send: Any, transport: Any) -> StreamProtocol | None:
    """Take the stream's socket from uvicorn; ``None`` if that cannot be done here."""
    cycle = getattr(send, "__self__", None)
    protocol = transport.get_protocol()
    connections = getattr(protocol, "connections", None)
    if (
        cycle is None
        or not hasattr(cycle, "response_complete")
        or getattr(cycle, "disconnected", True)
        or connections is None
        or transport.is_closing()
    ):
        return None
    stream = StreamProtocol()
    transport.set_protocol(stream)
    if protocol.flow.write_paused:  # keep what uvicorn already knew about back-pressure
        stream.pause_writing()
    connections.discard(protocol)  # uvicorn's shutdown no longer waits for this one
    cycle.response_complete = True  # the rest of the response is the hub's
    return stream


_cleanups: set[asyncio.Task[None]] = set()


def after_loss(stream: StreamProtocol, cleanup: Callable[[], Any]) -> None:
    """Run the async ``cleanup()`` when the peer goes away (a task, kept until done)."""

    def lost() -> None:
        task = asyncio.get_running_loop().create_task(cleanup())
        _cleanups.add(task)
        task.add_done_callback(_cleanups.discard)

    stream.on_lost(lost)
