"""Prometheus metrics, one registry per app so several apps can live in one process (tests).

Each app's registry carries the process (``process_*``: CPU, memory, open files), platform
(``python_info``) and garbage-collector (``python_gc_*``) collectors beside Hubbub's own series;
``*_created`` series are not exported (``disable_created_metrics``). Every series is per process:
with ``--workers N`` each worker has its own registry and ``/metrics`` answers from whichever
worker took the scrape (see docs/deployment.md, Metrics).

Nothing here runs per delivered event: deliveries are counted once per room batch and loop tick,
commits once per commit, broker lag once per event received from Redis (per node, not per
subscriber)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from hubbub.errors import RateLimited

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from hubbub.ratelimit.base import Attempt, FailureLimiter

disable_created_metrics()  # type: ignore[no-untyped-call]

# The writer's commit: a batch's append in one transaction (fsync included) and its publishes.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
# Publish on one node → received from Redis on another (wall clocks: NTP skew shows here too).
BROKER_LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30)
RATE_LIMITS = ("send", "auth", "streams")
RESYNC_TRIGGERS = ("periodic", "reconnect")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.connections = Gauge(
            "hubbub_connections",
            "Open streaming connections",
            ["transport"],
            registry=self.registry,
        )
        self.messages = Counter(
            "hubbub_messages", "Messages durably stored and published", registry=self.registry
        )
        self.delivered = Counter(
            "hubbub_events_delivered",
            "Events written to streaming connections",
            registry=self.registry,
        )
        self.latency = Histogram(
            "hubbub_delivery_latency_seconds",
            "From publish on this node to the write into the connections",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.slow_cutoffs = Counter(
            "hubbub_slow_client_cutoffs",
            "Streams cut off for not reading (SSE, /chat/events, WebSocket)",
            registry=self.registry,
        )
        # the writer (group commit): one observation per commit, not per message
        self.commit_seconds = Histogram(
            "hubbub_send_commit_seconds",
            "Time of one writer commit: the batch appended in one transaction, fsync included",
            buckets=COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "hubbub_send_batch_size_messages",
            "Sends committed together in one writer commit",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "hubbub_rate_limit_rejections",
            "Requests refused with 429 by a limit (send: --rate-limit-*, auth: failed sign-ins, "
            "streams: --max-streams-per-user)",
            ["limit"],
            registry=self.registry,
        )
        for limit in RATE_LIMITS:
            self.rate_limited.labels(limit)
        # the broker (Redis): what it lost, and how late it delivers
        self.resyncs = Counter(
            "hubbub_broker_resyncs",
            "Resyncs with the store (periodic, and after a broker reconnect)",
            ["trigger"],
            registry=self.registry,
        )
        for trigger in RESYNC_TRIGGERS:
            self.resyncs.labels(trigger)
        self.resync_recovered = Counter(
            "hubbub_broker_resync_recovered_events",
            "Events the broker did not deliver to this node, read back from the store by a resync",
            registry=self.registry,
        )
        self.broker_lag = Histogram(
            "hubbub_broker_lag_seconds",
            "From publish (any node) to receipt from the broker on this node (Redis broker)",
            buckets=BROKER_LAG_BUCKETS,
            registry=self.registry,
        )
        # webhooks (docs/webhooks.md)
        self.webhook_deliveries = Counter(
            "hubbub_webhook_deliveries", "Changes POSTed and answered 2xx", registry=self.registry
        )
        self.webhook_failures = Counter(
            "hubbub_webhook_failures",
            "Webhook attempts that failed (retried)",
            registry=self.registry,
        )
        self.webhook_given_up = Counter(
            "hubbub_webhook_given_up",
            "Changes given up after failing for the whole retry window",
            registry=self.registry,
        )
        self.webhook_lag = Gauge(
            "hubbub_webhook_lag_seconds",
            "Age of the change being delivered (0: caught up)",
            registry=self.registry,
        )
        self.webhook_backlog = Gauge(
            "hubbub_webhook_backlog_positions",
            "Log positions stored but not yet delivered to the webhook (0: caught up; "
            "reported by the node that holds the delivery lock)",
            registry=self.registry,
        )
        self.tasks = Gauge(
            "hubbub_asyncio_tasks", "Live asyncio tasks (a leak shows here)", registry=self.registry
        )
        self.tasks.set_function(_task_count)
        for transport in ("sse", "websocket", "longpoll"):
            self.connections.labels(transport)

    def observe_delivery(self, count: int, latency: float) -> None:
        self.delivered.inc(count)
        self.latency.observe(latency)

    def observe_commit(self, seconds: float, size: int) -> None:
        self.commit_seconds.observe(seconds)
        self.batch_size.observe(size)

    def observe_resync(self, trigger: str, recovered: int) -> None:
        self.resyncs.labels(trigger).inc()
        if recovered:
            self.resync_recovered.inc(recovered)

    def refused(self, limit: str) -> None:
        self.rate_limited.labels(limit).inc()


class CountedFailureLimiter:
    """A sign-in failure limiter whose refusals are counted (``limit="auth"``)."""

    __slots__ = ("_counter", "_inner")

    def __init__(self, inner: FailureLimiter, metrics: Metrics) -> None:
        self._inner = inner
        self._counter = metrics.rate_limited.labels("auth")

    def attempt(self, name: str, address: str | None) -> AbstractAsyncContextManager[Attempt]:
        return _CountedAttempt(self._inner.attempt(name, address), self._counter)


class _CountedAttempt:
    __slots__ = ("_counter", "_inner")

    def __init__(self, inner: AbstractAsyncContextManager[Attempt], counter: Counter) -> None:
        self._inner = inner
        self._counter = counter

    async def __aenter__(self) -> Attempt:
        try:
            return await self._inner.__aenter__()
        except RateLimited:
            self._counter.inc()
            raise

    async def __aexit__(self, *exc: object) -> bool | None:
        return await self._inner.__aexit__(*exc)  # type: ignore[arg-type]


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped outside the loop
        return 0.0
