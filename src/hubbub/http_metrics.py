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

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

UNMATCHED = "unmatched"
ROUTE_KEY = "hubbub.route"
"""Where the app leaves a raw route's template in the ASGI scope (FastAPI leaves ``route``)."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNTIMED = frozenset({"/chat/room/{room_id}/poll"})
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BOUNDS = (*map(str, BUCKETS), "+Inf")
_REQUESTS = "hubbub_http_requests"
_REQUESTS_HELP = "HTTP requests answered, by route template and status (streams: once established)"
_DURATION = "hubbub_http_request_duration_seconds"
_DURATION_HELP = "From a request's headers to its response head (long-polls excluded)"


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


class HttpMetrics(Collector):
    """The two series, kept as plain numbers and turned into metric families when scraped:
    a request costs a dict lookup, a bisect and two additions, no lock (every request is
    counted on the event loop's thread, where ``/metrics`` is served too)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._counts: dict[tuple[str, str, int], int] = {}
        # per (method, route): the count in each bucket (not cumulative; the last is +Inf),
        # then the sum of the durations
        self._timings: dict[tuple[str, str], list[float]] = {}
        registry.register(self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in _METHODS:
            method = "other"
        key = (method, route, status)
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        if route in _UNTIMED:
            return
        timing = self._timings.get((method, route))
        if timing is None:
            timing = self._timings[method, route] = [0.0] * (len(BUCKETS) + 2)
        timing[bisect_left(BUCKETS, seconds)] += 1
        timing[-1] += seconds

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(_REQUESTS, _REQUESTS_HELP, labels=["method", "route", "status"])
        yield HistogramMetricFamily(_DURATION, _DURATION_HELP, labels=["method", "route"])

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            _REQUESTS, _REQUESTS_HELP, labels=["method", "route", "status"]
        )
        for (method, route, status), count in sorted(self._counts.items()):
            requests.add_metric([method, route, str(status)], count)
        yield requests
        duration = HistogramMetricFamily(_DURATION, _DURATION_HELP, labels=["method", "route"])
        for (method, route), timing in sorted(self._timings.items()):
            buckets = []
            seen = 0.0
            for bound, in_bucket in zip(_BOUNDS, timing, strict=False):
                seen += in_bucket
                buckets.append((bound, seen))
            duration.add_metric([method, route], buckets, timing[-1])
        yield duration
