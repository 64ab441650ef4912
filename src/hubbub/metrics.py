"""Prometheus metrics, one registry per app so several apps can live in one process (tests)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
            "Streams cut off for not reading",
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
        self.tasks = Gauge(
            "hubbub_asyncio_tasks", "Live asyncio tasks (a leak shows here)", registry=self.registry
        )
        self.tasks.set_function(_task_count)
        for transport in ("sse", "websocket", "longpoll"):
            self.connections.labels(transport)

    def observe_delivery(self, count: int, latency: float) -> None:
        self.delivered.inc(count)
        self.latency.observe(latency)


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped outside the loop
        return 0.0
