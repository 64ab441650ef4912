"""``/metrics`` as an operator scrapes it, from real server processes (docs/deployment.md,
Metrics): the process and runtime collectors, no ``_created`` series, the writer's commit time
and batch size, 429s per limit, the webhook backlog while the receiver is down, and the Redis
broker's resyncs (a publish the broker never delivered, read back from the store) and lag."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    REDIS_URL,
    Server,
    client,
    create_pg_database,
    drop_pg_database,
    free_port,
    open_stream,
    redis_available,
    say,
    user,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} missing from /metrics"
    return samples[key]


async def metrics_of(http: httpx.AsyncClient) -> Samples:
    r = await http.get("/metrics")
    assert r.status_code == 200
    return scrape(r.text)


async def eventually(
    http: httpx.AsyncClient, check: Callable[[Samples], bool], timeout: float = 15.0
) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = await metrics_of(http)
        if check(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.1)


async def test_process_runtime_writer_limits_and_webhook_backlog(data_dir: Path) -> None:
    dead_receiver = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    server = Server(
        data_dir,
        env={"HUBBUB_RATE_LIMIT_BURST": "8", "HUBBUB_RATE_LIMIT_PER_SECOND": "0.5"},
        args=[
            *("--max-streams-per-user", "1"),
            *("--webhook-url", dead_receiver, "--webhook-secret", "whsec-" + "k" * 24),
        ],
    ).start()
    try:
        async with client(server.url) as http:
            before = await metrics_of(http)
            # The webhook worker starts at the head and has nothing to deliver yet.
            assert value(before, "hubbub_webhook_backlog_positions") == 0
            async with open_stream(http, "/chat/room/ops/events", headers=user("watcher")) as s:
                # A second stream of the same user is over --max-streams-per-user: 429.
                async with open_stream(
                    http, "/chat/room/ops/events", headers=user("watcher"), connected=False
                ) as second:
                    assert second.status == 429
                # Eight concurrent sends fit the burst; twelve more of the same user get 429.
                sends = [
                    http.post(
                        "/chat/messages",
                        headers=user("alice"),
                        json={"room_id": "ops", "message": f"m{i}"},
                    )
                    for i in range(20)
                ]
                codes = [r.status_code for r in await asyncio.gather(*sends)]
                assert sorted(set(codes)) == [201, 429], codes
                stored = codes.count(201)
                refused = codes.count(429)
                await s.wait_messages(stored)

            samples = await eventually(
                http,
                lambda m: m.get(("hubbub_webhook_backlog_positions", frozenset()), 0) >= stored,
            )
        text = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()

    # process and runtime collectors are back
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert value(samples, name) > 0
    assert any(name == "python_info" for name, _ in samples)
    assert value(samples, "python_gc_collections_total", generation="0") >= 0
    # no _created series (prometheus_client adds one per counter/histogram unless disabled)
    assert "_created" not in text
    # the writer: one observation per commit, the batch sizes add up to the sends stored
    commits = value(samples, "hubbub_send_commit_seconds_count")
    assert 1 <= commits <= stored
    assert value(samples, "hubbub_send_commit_seconds_sum") > 0
    assert value(samples, "hubbub_send_batch_size_messages_count") == commits
    # each stored send was in exactly one batch (room_created etc. are not sends)
    assert value(samples, "hubbub_send_batch_size_messages_sum") == stored
    # 429s, by limit
    assert value(samples, "hubbub_rate_limit_rejections_total", limit="send") == refused
    assert value(samples, "hubbub_rate_limit_rejections_total", limit="streams") == 1
    assert value(samples, "hubbub_rate_limit_rejections_total", limit="auth") == 0
    # the receiver is down: what was stored since the worker started is still to be delivered
    assert value(samples, "hubbub_webhook_backlog_positions") >= stored
    assert value(samples, "hubbub_webhook_failures_total") >= 1
    assert value(samples, "hubbub_webhook_deliveries_total") == 0
    # the broker is in memory here: nothing to resync, no lag series observed
    assert value(samples, "hubbub_broker_resyncs_total", trigger="periodic") == 0
    assert value(samples, "hubbub_broker_lag_seconds_count") == 0


async def test_sign_in_lockout_counts_as_auth_rejections(data_dir: Path) -> None:
    server = Server(data_dir, auth="jwt", env={"HUBBUB_AUTH_FAILURES_PER_USER": "2"}).start()
    try:
        async with client(server.url) as http:
            codes = []
            for _ in range(4):
                r = await http.post(
                    "/auth/login", json={"username": "nobody", "password": "wrong password!"}
                )
                codes.append(r.status_code)
            assert codes == [401, 401, 429, 429], codes
            samples = await metrics_of(http)
    finally:
        server.stop()
    assert value(samples, "hubbub_rate_limit_rejections_total", limit="auth") == 2
    assert value(samples, "hubbub_rate_limit_rejections_total", limit="send") == 0


async def test_redis_broker_resync_recovers_a_missed_publish(tmp_path: Path) -> None:
    """Two nodes on one database whose brokers never hear each other (different prefixes on
    one Redis): a message sent through B is a publish A's broker missed. A's periodic resync
    reads it from the store, delivers it to A's stream, and counts it."""
    redis_available()
    db = create_pg_database()
    tag = secrets.token_hex(4)
    env = {
        "HUBBUB_DATABASE": db,
        "HUBBUB_BROKER": REDIS_URL,
        "HUBBUB_RESYNC_INTERVAL": "0.3",
        "HUBBUB_RATE_LIMIT_BURST": "1000",
        "HUBBUB_RATE_LIMIT_PER_SECOND": "1000",
    }
    a = Server(tmp_path / "a", env={**env, "HUBBUB_BROKER_PREFIX": f"mt{tag}a:"})
    b = Server(tmp_path / "b", env={**env, "HUBBUB_BROKER_PREFIX": f"mt{tag}b:"})
    try:
        a.start(timeout=90)  # migrates the new database first
        b.start(timeout=90)
        room = f"resync-{tag}"
        async with client(a.url) as http_a, client(b.url) as http_b:
            await say(http_a, "bob", room, "through a")  # bob joins (trust mode) through a
            async with open_stream(http_a, f"/chat/room/{room}/events", headers=user("w")) as s:
                await say(http_a, "bob", room, "through a, live")
                await s.wait_messages(1)
                before = await metrics_of(http_a)
                missed = await say(http_b, "bob", room, "through b: a's broker never hears it")
                got = await s.wait_messages(2)
                assert got[-1]["text"] == missed["text"]
            samples = await eventually(
                http_a,
                lambda m: (
                    m.get(("hubbub_broker_resync_recovered_events_total", frozenset()), 0) >= 1
                ),
            )
    finally:
        for node in (a, b):
            if node.proc is not None:
                node.stop()
        drop_pg_database(db)
    assert value(before, "hubbub_broker_resync_recovered_events_total") == 0
    assert value(samples, "hubbub_broker_resync_recovered_events_total") == 1
    assert value(samples, "hubbub_broker_resyncs_total", trigger="periodic") >= 1
    assert value(samples, "hubbub_broker_resyncs_total", trigger="reconnect") == 0
    # A's own publishes came back through Redis: publish -> receive observed, and quick
    assert value(samples, "hubbub_broker_lag_seconds_count") >= 1
    assert value(samples, "hubbub_broker_lag_seconds_bucket", le="1.0") == value(
        samples, "hubbub_broker_lag_seconds_count"
    )
