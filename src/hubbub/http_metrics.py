"""Per-route HTTP metrics: ``hubbub_http_requests_total{method,route,status}`` and
``hubbub_http_request_duration_seconds{method,route}``.

``route`` is the route's template (``/chat/room/{room_id}/messages``), never the raw path;
a request no route matched is ``unmatched``, and a method outside the usual ones is ``other``,
so what a client puts in a request line cannot grow the series.

A request is counted, and its duration observed, when its response head goes out (from the
end of its headers to the head): a stream (SSE) is counted once it is established, and the
histogram holds its time to first byte, never the hours it stays open. A long-poll's head
waits for a message or its timeout (the client's choice), so ``/chat/room/{room_id}/poll``
is counted but kept out of the histogram. WebSocket sessions are not HTTP requests here
(``hubbub_connections{transport="websocket"}`` counts them).

The ASGI path is measured by the HTTP protocol's request cycle (``http_protocol.py``), the
send fast lane by the lane itself; the app only names the route.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

UNMATCHED = "unmatched"
ROUTE_KEY = "hubbub.route"
"""Where the app leaves a raw route's template in the ASGI scope (FastAPI leaves ``route``)."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNTIMED = frozenset({"/chat/room/{room_id}/poll"})
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def route_of(scope: Any) -> str:
    """The template of the route that answered (set by the app or FastAPI), or ``unmatched``."""
    route: str | None = scope.get(ROUTE_KEY)
    if route is not None:
        return route
    found = scope.get("route")
    path = getattr(found, "path", None)
    if isinstance(path, str):
        if getattr(found, "routes", None) is not None:  # a Mount: its files under one label
            return path.rstrip("/") + "/{path}"
        return path
    return UNMATCHED


class HttpMetrics:
    """The two series on ``registry``, with each label set's children kept at hand: one dict
    lookup per request instead of prometheus_client's ``labels()``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "hubbub_http_requests",
            "HTTP requests answered, by route template and status (streams: once established)",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "hubbub_http_request_duration_seconds",
            "From a request's headers to its response head (long-polls excluded)",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._child(method, route, status)
        counter, histogram = children
        counter.inc()
        if histogram is not None:
            histogram.observe(seconds)

    def _child(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        label = method if method in _METHODS else "other"
        counter = self.requests.labels(label, route, str(status))
        histogram = None if route in _UNTIMED else self.duration.labels(label, route)
        children = (counter, histogram)
        if label == method:  # an odd method shares "other"; not kept under each spelling
            self._children[method, route, status] = children
        return children
