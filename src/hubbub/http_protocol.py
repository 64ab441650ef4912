"""uvicorn's httptools protocol, with the two limits it lacks on reading a request's head, and
a fast lane for the hottest request.

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

**The fast lane.** ``POST /chat/messages`` is answered here, below ASGI: the head and body the
parser hands over go straight to ``HubbubApp.answer_send`` (the request guard, then
``SendRoute.answer``), and the reply is written to the transport as one ``write``. uvicorn's
per-request cycle — the ASGI scope and its copies, a ``RequestResponseCycle`` with its event,
the receive/send message dicts and their checks — cost about 110 µs of CPU per request on the
2-core bench machine, more than the send's own work (``docs/performance.md``). What the lane
keeps of HTTP: keep-alive and ``Connection: close``, HTTP/1.0, chunked bodies, the body limit
(the rest of a too-large body is read and dropped, then 413), pipelining (a request that arrives
while a fast one is answered waits in uvicorn's own queue, so replies keep their order),
``X-Forwarded-Proto`` from a trusted proxy, graceful shutdown (the answer is a server task that
shutdown waits for; no more requests are read on the connection). Anything else — another route,
a path spelled with escapes, ``Expect: 100-continue``, an upgrade, access logging or trace logs
on, a root path — takes uvicorn's ASGI path, which serves the same route with the same answers.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import Any

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from hubbub.api.raw import JSON_TYPE, Reply, error_reply
from hubbub.app import HubbubApp
from hubbub.config import Settings
from hubbub.errors import HubbubError
from hubbub.http_metrics import HttpMetrics, route_of
from hubbub.logs import REQUEST_ID, SCOPE_KEY, request_id_of

log = logging.getLogger("hubbub")

FAST_PATH = b"/chat/messages"
_SCHEMES = frozenset({"http", "https"})

_TOO_LARGE = (
    b'{"error":{"code":"headers_too_large","message":"the request line and headers are larger '
    b'than the server accepts"}}'
)


class _NoEvent:
    __slots__ = ()

    def set(self) -> None:
        pass


class FastCycle:
    """One request on the fast lane. It stands in ``protocol.cycle`` while it is answered, with
    the attributes uvicorn reads there: an unfinished cycle makes uvicorn queue a pipelined
    request (and stop reading), and makes shutdown wait for the answer instead of closing."""

    __slots__ = (
        "body",
        "disconnected",
        "headers",
        "keep_alive",
        "message_event",
        "query",
        "request_id",
        "response_complete",
        "size",
        "started",
        "too_large",
    )

    def __init__(self, headers: list[tuple[bytes, bytes]], query: bytes, keep_alive: bool) -> None:
        self.headers = headers  # the parser moves on to a pipelined request's headers
        self.query = query
        self.keep_alive = keep_alive
        self.request_id = request_id_of(headers)
        self.started = perf_counter()
        self.body: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.response_complete = False
        self.disconnected = False
        self.message_event = _NoEvent()


class MeteredCycle(RequestResponseCycle):
    """uvicorn's request cycle, counting the request in the per-route metrics when its
    response head goes out (``http_metrics.py``). The protocol turns each new cycle into one
    and gives it ``started`` and ``meter``; its own request id is in its default headers."""

    started: float
    meter: HttpMetrics | None

    async def send(self, message: Any) -> None:
        meter = self.meter
        if (
            meter is not None
            and not self.response_started
            and message["type"] == "http.response.start"
        ):
            scope = self.scope
            meter.observe(
                scope["method"], route_of(scope), message["status"], perf_counter() - self.started
            )
        await super().send(message)


def _hubbub_of(app: Any) -> HubbubApp | None:
    while app is not None and not isinstance(app, HubbubApp):
        app = getattr(app, "app", None)  # uvicorn's middleware wrappers
    return app


def _fast_lane_of(app: Any) -> tuple[HubbubApp | None, Any]:
    """The Hubbub app behind uvicorn's wrappers, and the proxy middleware's trusted hosts (or
    None). No lane when anything else wraps the app: it would be skipped."""
    trusted = None
    while app is not None and not isinstance(app, HubbubApp):
        if not isinstance(app, ProxyHeadersMiddleware):
            return None, None
        trusted = app.trusted_hosts
        app = app.app
    return app, trusted


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = 64 * 1024
    head_timeout = 10.0

    # The fast lane of this process's app, worked out by the first connection: class-level,
    # so an idle stream's protocol object carries no more attributes than uvicorn's own.
    _lane_app: Any = None
    _lane: HubbubApp | None = None
    _trusted: Any = None
    _hubbub: HubbubApp | None = None  # the app (per-route metrics), with or without a lane

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cls = type(self)
        if cls._lane_app is not self.app:
            lane, trusted = _fast_lane_of(self.app)
            if self.access_log or self.root_path or self.limit_concurrency is not None:
                lane = None
            cls._lane, cls._trusted, cls._lane_app = lane, trusted, self.app
            cls._hubbub = _hubbub_of(self.app)
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
        if self._lane is not None and self._takes_fast_lane():
            return
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not previous and type(cycle) is RequestResponseCycle:  # not an upgrade
            self._stamp(cycle)

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        cycle = self.cycle
        if isinstance(cycle, FastCycle):
            if not cycle.too_large:
                cycle.size += len(body)
                if cycle.size > self._lane_limit():
                    cycle.too_large = True
                    cycle.body.clear()
                else:
                    cycle.body.append(body)
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        cycle = self.cycle
        if isinstance(cycle, FastCycle):
            task = self.loop.create_task(self._answer_fast(cycle))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)
            return
        super().on_message_complete()

    def _stamp(self, cycle: RequestResponseCycle) -> None:
        """The request's id (in its scope, for the app, and in its response head) and what
        the per-route metrics need."""
        rid = request_id_of(self.headers)
        self.scope[SCOPE_KEY] = rid.decode()  # type: ignore[literal-required]
        cycle.default_headers = [*cycle.default_headers, (b"x-request-id", rid)]
        cycle.__class__ = MeteredCycle
        metered: Any = cycle
        metered.started = perf_counter()
        hubbub = self._hubbub
        metered.meter = hubbub.http_metrics if hubbub is not None else None

    # the fast lane

    def _takes_fast_lane(self) -> bool:
        if self.parser.get_method() != b"POST" or self.expect_100_continue:
            return False
        path, _, query = self.url.partition(b"?")
        if path != FAST_PATH or self.parser.should_upgrade():
            return False
        if self.cycle is not None and not self.cycle.response_complete:
            return False  # pipelined behind an unanswered request: uvicorn queues it
        version = self.parser.get_http_version()
        self.cycle = FastCycle(  # type: ignore[assignment]
            self.headers,
            query.partition(b"#")[0],
            version != "1.0" and self.parser.should_keep_alive(),
        )
        return True

    def _lane_limit(self) -> int:
        route = self._lane.send_route if self._lane is not None else None
        return route.max_body_bytes if route is not None else 0

    def _scheme(self, headers: list[tuple[bytes, bytes]]) -> str:
        scheme: str = self.scheme or "http"
        if self._trusted is not None and self.client and self.client[0] in self._trusted:
            for name, value in headers:
                if name == b"x-forwarded-proto":
                    proto = value.decode("latin-1").strip()
                    if proto in _SCHEMES:
                        scheme = proto
        return scheme

    async def _answer_fast(self, cycle: FastCycle) -> None:
        lane = self._lane
        assert lane is not None
        REQUEST_ID.set(cycle.request_id.decode())  # this task's log lines
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/chat/messages",
            "headers": cycle.headers,
            "query_string": cycle.query,
            "scheme": self._scheme(cycle.headers),
            "client": self.client,
        }
        try:
            reply = await lane.answer_send(scope, b"".join(cycle.body), cycle.too_large)
        except Exception as exc:  # a bug: answered as uvicorn would, logged with its traceback
            log.exception("POST /chat/messages failed")
            reply = error_reply(HubbubError(f"internal error: {type(exc).__name__}"))
        meter = lane.http_metrics
        if meter is not None:
            meter.observe("POST", "/chat/messages", reply.status, perf_counter() - cycle.started)
        self._write_fast(cycle, reply)

    def _write_fast(self, cycle: FastCycle, reply: Reply) -> None:
        cycle.response_complete = True
        if self.transport.is_closing():
            return
        head = [STATUS_LINE[reply.status]]
        for name, value in self.server_state.default_headers:
            head.extend((name, b": ", value, b"\r\n"))
        head.append(
            b"content-type: %s\r\ncontent-length: %d\r\nx-request-id: %s\r\n"
            % (JSON_TYPE, len(reply.body), cycle.request_id)
        )
        for name, value in reply.headers or ():
            head.extend((name, b": ", value, b"\r\n"))
        if not cycle.keep_alive:
            head.append(b"connection: close\r\n")
        head.extend((b"\r\n", reply.body))
        self.transport.write(b"".join(head))
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()

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
