"""uvicorn's httptools protocol, with the two limits it lacks on reading a request's head.

httptools (llhttp) accepts request headers of any size, and uvicorn arms no timer until a first
request has been answered: a 64 MiB header is buffered whole, and a client that trickles a
header byte now and then holds its socket (and a slot in the process's file table) for ever.
So, per connection:

* the request line and headers may take at most ``max_head_bytes`` (64 KiB): beyond, the
  answer is 431 and the connection closes — before any handler runs, with at most one read
  chunk more than the limit ever buffered;
* complete headers must arrive within ``head_timeout`` seconds (10) of the connection opening,
  or of the first byte of a keep-alive request; else the connection is closed.

Limits are class attributes (set once by ``configure``) because uvicorn instantiates the class
itself, in each worker process.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hubbub.config import Settings

_TOO_LARGE = (
    b'{"error":{"code":"headers_too_large","message":"the request line and headers are larger '
    b'than the server accepts"}}'
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = 64 * 1024
    head_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0  # bytes received while a head was incomplete
        self._field_bytes = 0  # the parsed head's size, for a head that arrived in one read
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._refused or (self._in_head and self._head_bytes > self.max_head_bytes):
            self._refuse_head()

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._field_bytes = 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._field_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._field_bytes += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._cancel_head_timer()
        if self._refused or self._field_bytes > self.max_head_bytes:
            self._refused = True  # answered by data_received once the parser returns
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    # the two limits

    def _arm_head_timer(self) -> None:
        if self._head_timer is None and self.head_timeout > 0:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self.transport.close()

    def _refuse_head(self) -> None:
        self._refused = True
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE), _TOO_LARGE)
        )
        self.transport.close()


def configure(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    GuardedHttpToolsProtocol.max_head_bytes = settings.max_header_bytes
    GuardedHttpToolsProtocol.head_timeout = settings.header_timeout
    return GuardedHttpToolsProtocol
